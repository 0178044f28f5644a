"""The other supported systems, deployed like the default one: a Debian 12 host as root and an Ubuntu
24.04 host made like a cloud image (root cannot log in over SSH) deployed as its `ubuntu` user with
`_sudo` and `sshd_permit_root_login: no`. One pyinfra run deploys both in parallel: a fresh deploy,
every verify check (through sudo on Ubuntu), then a re-run that changes nothing.

Cost: two more hosts join the sandbox for this module only (and leave at its end)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
from pyinfra.facts.server import LinuxDistribution

import sandbox
from tests.integration.conftest import HOSTS, REPO, SECRETS_STEP, changed_hosts, deploy_json, run_verify, ssh
from tests.unit.test_distros import facts as fake_facts

pytestmark = pytest.mark.sandbox

# (distro, root may log in): the hosts after the suite's own HOSTS.
MATRIX = [("debian12", True), ("ubuntu2404", False)]


@pytest.fixture(scope="module")
def matrix_state(sandbox_state):
    state = sandbox.up(HOSTS + len(MATRIX),
                       [sandbox.DEFAULT_DISTRO] * HOSTS + [distro for distro, _ in MATRIX],
                       root_login=[True] * HOSTS + [root for _, root in MATRIX])
    yield state
    sandbox.up(HOSTS)


@pytest.fixture(scope="module")
def matrix_inventory(matrix_state, tmp_path_factory) -> str:
    """inventories/sandbox.py limited to the matrix hosts; a host only its admin user reaches also
    forbids root logins, as such a user would set it."""
    hosts = matrix_state["hosts"][HOSTS:]
    path = tmp_path_factory.mktemp("distros") / "inventory.py"
    path.write_text(
        "import runpy\n"
        f"_hosts, _data = runpy.run_path({str(REPO / 'inventories' / 'sandbox.py')!r})['sandbox']\n"
        f"_matrix = {[h['address'] for h in hosts]!r}\n"
        "sandbox = ([(name, {**data, **({'sshd_permit_root_login': 'no'} if data.get('_sudo') else {})})\n"
        "            for name, data in _hosts if name in _matrix], _data)\n"
    )
    return str(path)


@pytest.fixture(scope="module")
def fresh_deploy(matrix_inventory, kit_env):
    return deploy_json(kit_env, inventory=matrix_inventory)


def test_the_matrix_hosts_run_their_distros(matrix_state):
    hosts = matrix_state["hosts"][HOSTS:]
    assert [(h["os"], h["ssh_user"]) for h in hosts] == [("Debian 12", "root"), ("Ubuntu 24.04", "ubuntu")]
    # Like a cloud image: root cannot log in over SSH, the ubuntu user can and has sudo.
    ubuntu = hosts[1]["address"]
    refused = ssh(matrix_state, ubuntu, "true", check=False)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert ssh({**matrix_state, "ssh_user": "ubuntu"}, ubuntu, "sudo -n id -un").stdout.strip() == "root"


def test_record_facts_reads_what_the_fake_hosts_assume_and_changes_nothing(matrix_state, matrix_inventory, kit_env,
                                                                           tmp_path):
    """`./kit record-facts` on a fresh Debian 12 host, a fresh Ubuntu 24.04 host (through sudo) and the
    suite's Debian 13 host: what it records matches the facts the unit tests' fake hosts are given."""
    hosts = matrix_state["hosts"][HOSTS:] + matrix_state["hosts"][:1]
    for host in hosts:
        inventory = matrix_inventory if host in matrix_state["hosts"][HOSTS:] else "inventories/sandbox.py"
        out = tmp_path / host["name"]
        run = subprocess.run([sys.executable, "-m", "openclaw_kit.record_facts", inventory, host["address"], "--out", str(out)],
                             cwd=REPO, env=kit_env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
        index = json.loads((out / "facts.json").read_text())
        assert len(index) > 50
        fresh = host in matrix_state["hosts"][HOSTS:]
        for key, fake in fake_facts(host["os"]).items():
            entry = next((e for e in index if key in e["command"]), None)
            if entry is None:  # a deployed host is not asked everything a fresh one is (useradd: the account exists)
                assert not fresh, (host["os"], key, "a fresh host is asked what the fake fresh hosts answer")
                continue
            real = (out / entry["file"]).read_text().splitlines()
            fake = fake if isinstance(fake, list) else [fake]
            if entry["fact"] == "server.LinuxDistribution":
                real, fake = LinuxDistribution().process(real), LinuxDistribution().process(fake)
                assert {k: real[k] for k in ("name", "major", "minor")} == {k: fake[k] for k in ("name", "major", "minor")}
                assert real["release_meta"]["VERSION_CODENAME"] == fake["release_meta"]["VERSION_CODENAME"]
            elif key == "uname -m":  # the fakes are x86_64; the sandbox hosts are this machine's CPU
                assert real == [platform.machine()]
            else:
                assert real == fake, (host["os"], key)
        recorded = "".join(p.read_text() for p in out.iterdir())
        assert host["name"] not in recorded and sandbox.host_domain(host["name"]) not in recorded
        assert (out / "README.md").read_text().startswith(
            f"# Facts recorded from a real {host['os'].lower().replace(' ', '').replace('.', '')}_{platform.machine()} host")
    for host in matrix_state["hosts"][HOSTS:]:  # still fresh: recording ran no operation
        user = {**matrix_state, "ssh_user": host["ssh_user"]}
        assert ssh(user, host["address"], "test -e /etc/openclaw", check=False).returncode == 1


def test_a_fresh_deploy_succeeds_on_every_distro(fresh_deploy, matrix_state):
    addresses = sorted(h["address"] for h in matrix_state["hosts"][HOSTS:])
    assert fresh_deploy["results"]["failed_hosts"] == []
    changed = changed_hosts(fresh_deploy)
    assert changed[SECRETS_STEP] == addresses


def test_every_verify_check_passes_on_every_distro(fresh_deploy, matrix_inventory, kit_env):
    verify = run_verify(kit_env, inventory=matrix_inventory)
    assert verify.returncode == 0, verify.stdout[-4000:]
    assert " passed" in verify.stdout and " failed" not in verify.stdout


def test_a_second_run_changes_nothing_on_every_distro(fresh_deploy, matrix_inventory, kit_env):
    second = deploy_json(kit_env, inventory=matrix_inventory)
    assert changed_hosts(second) == {}
    assert second["results"]["totals"]["error"] == 0
