"""Role base on real sandbox hosts: hardened on the first run, unchanged on the second, drift put
back, and an sshd drop-in that sshd rejects never reaches the running sshd."""

import shutil
import subprocess
import sys

import pytest

from roles.base.sshd import SSHD_CANDIDATE, SSHD_DROPIN
from tests.integration.conftest import REPO, changed_hosts, deploy_json, inventory_with, run_pyinfra, ssh

pytestmark = pytest.mark.sandbox

SSHD_STEP = f"base | sshd drop-in: check it with sshd -t, then put it in place at {SSHD_DROPIN}"
RELOAD = "base | Reload sshd for its new drop-in"
APPLY_SYSCTL = "base | Apply the kernel settings"


@pytest.fixture(scope="module")
def deployed(sandbox_state, kit_env):
    return deploy_json(kit_env)


@pytest.fixture(scope="module")
def addresses(sandbox_state):
    return [host["address"] for host in sandbox_state["hosts"]]


def sshd_effective(state, address) -> str:
    return ssh(state, address, "sshd -T").stdout


def sshd_state(state, address) -> str:
    """What must survive a rejected drop-in: the file, the listener's PID, the effective config."""
    return ssh(state, address, f"sha256sum {SSHD_DROPIN}; systemctl show -p MainPID --value ssh; sshd -T | sort").stdout


def test_first_run_hardens_both_hosts(deployed, kit_env):
    assert deployed["results"]["failed_hosts"] == []
    verify = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify/test_base.py", "--inventory", "inventories/sandbox.py"],
        cwd=REPO, env=kit_env, capture_output=True, text=True, timeout=600,
    )
    assert verify.returncode == 0, verify.stdout[-4000:]
    assert " passed" in verify.stdout and "failed" not in verify.stdout and "skipped" not in verify.stdout


def test_second_run_changes_nothing(deployed, kit_env):
    second = deploy_json(kit_env)
    assert changed_hosts(second) == {}
    assert second["results"]["totals"]["error"] == 0


def test_a_deleted_sshd_dropin_comes_back(deployed, sandbox_state, kit_env, addresses):
    first = addresses[0]
    ssh(sandbox_state, first, f"rm {SSHD_DROPIN}")
    assert "passwordauthentication yes" in sshd_effective(sandbox_state, first).splitlines()
    changed = changed_hosts(deploy_json(kit_env))
    assert changed == {SSHD_STEP: [first], RELOAD: [first]}
    assert "passwordauthentication no" in sshd_effective(sandbox_state, first).splitlines()
    assert ssh(sandbox_state, first, f"stat -c '%a %U %G' {SSHD_DROPIN}").stdout.split() == ["644", "root", "root"]


def test_a_kernel_value_changed_by_hand_is_put_back(deployed, sandbox_state, kit_env, addresses):
    second = addresses[1]
    ssh(sandbox_state, second, "sysctl -qw net.ipv4.conf.all.send_redirects=1")
    changed = changed_hosts(deploy_json(kit_env))
    # The file did not change: only the live value did, and that alone re-applies it.
    assert changed == {APPLY_SYSCTL: [second]}
    assert ssh(sandbox_state, second, "cat /proc/sys/net/ipv4/conf/all/send_redirects").stdout.strip() == "0"


def test_access_settings_reach_sshd(deployed, sandbox_state, kit_env, addresses, tmp_path):
    restricted = inventory_with(tmp_path, sshd_allow_users=["root"], sshd_allow_groups=["root"], sshd_tcp_forwarding="local")
    run = run_pyinfra(kit_env, "--json", inventory=restricted)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    for address in addresses:
        effective = sshd_effective(sandbox_state, address).splitlines()  # a new connection, under the new rules
        assert {"allowusers root", "allowgroups root", "allowtcpforwarding local", "allowagentforwarding no"} <= set(effective)
    # Back to the plain inventory: the restrictions go away again.
    assert sorted(changed_hosts(deploy_json(kit_env))[RELOAD]) == sorted(addresses)
    effective = sshd_effective(sandbox_state, addresses[0]).splitlines()
    assert "allowtcpforwarding no" in effective and not any(line.startswith(("allowusers", "allowgroups")) for line in effective)


def test_allow_groups_without_the_deploy_user_is_refused_on_the_host(deployed, sandbox_state, kit_env, addresses, tmp_path):
    before = {address: sshd_state(sandbox_state, address) for address in addresses}
    run = run_pyinfra(kit_env, inventory=inventory_with(tmp_path, sshd_allow_groups=["openclaw-kit-nobody"]))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "sshd_allow_groups: the deploy's ssh_user root is in none of openclaw-kit-nobody" in output
    for address in addresses:
        assert sshd_state(sandbox_state, address) == before[address]


def test_a_dropin_that_would_be_read_before_the_kits_is_reported(deployed, sandbox_state, kit_env, addresses):
    first = addresses[0]
    ssh(sandbox_state, first, f"printf 'PasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/0-early.conf && rm {SSHD_DROPIN}")
    try:
        run = run_pyinfra(kit_env)
        assert run.returncode != 0
        assert "/etc/ssh/sshd_config.d/0-early.conf sorts before 00-openclaw-kit.conf" in run.stdout + run.stderr
        assert ssh(sandbox_state, first, f"ls {SSHD_DROPIN} {SSHD_CANDIDATE} 2>&1", check=False).stdout.count("No such file") == 2
    finally:
        ssh(sandbox_state, first, "rm -f /etc/ssh/sshd_config.d/0-early.conf")
    assert changed_hosts(deploy_json(kit_env))[SSHD_STEP] == [first]
    assert "passwordauthentication no" in sshd_effective(sandbox_state, first).splitlines()


def test_a_dropin_sshd_rejects_never_reaches_sshd(deployed, sandbox_state, kit_env, addresses, tmp_path):
    # The kit as it is, but with a template sshd -t rejects (a valid keyword with an invalid value).
    copy = tmp_path / "kit"
    for part in ("openclaw_kit", "roles", "templates", "inventories", "sandbox"):
        shutil.copytree(REPO / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "deploy.py", copy / "deploy.py")
    with (copy / "templates" / "base" / "sshd.conf.j2").open("a") as template:
        template.write("MaxAuthTries three\n")
    before = {address: sshd_state(sandbox_state, address) for address in addresses}

    run = subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", "inventories/sandbox.py", "deploy.py"],
        cwd=copy, env={**kit_env, "PYTHONPATH": str(copy)}, capture_output=True, text=True, timeout=1200,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Bad configuration option" in output or "MaxAuthTries integer value invalid" in output, output[-3000:]  # sshd's own words
    assert output.count("sshd -t rejected the new") == len(addresses)
    assert "Reload sshd for its new drop-in" not in output

    for address in addresses:
        # A new connection works, the running sshd is the same process with the same config, and
        # the kept files are gone.
        assert ssh(sandbox_state, address, "systemctl is-active ssh").stdout.strip() == "active"
        assert sshd_state(sandbox_state, address) == before[address]
        assert ssh(sandbox_state, address, f"ls {SSHD_CANDIDATE} {SSHD_DROPIN}.openclaw-kit-new 2>&1", check=False).stdout.count("No such file") == 2
