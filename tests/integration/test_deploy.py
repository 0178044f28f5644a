"""A real deploy to two sandbox hosts, checked with testinfra over SSH, then re-run with no changes.

The deploy as a sudo user (`_sudo`) runs on the Ubuntu host of test_distros.py."""

import pytest

from roles.base.debian import APT_PROXY
from roles.openclaw import ENV_FILE
from tests.integration.conftest import SECRETS_STEP, changed_hosts, deploy_json, run_verify, ssh

pytestmark = pytest.mark.sandbox

@pytest.fixture(scope="module")
def first_run(sandbox_state, kit_env):
    # Other modules may have deployed already: take away something on both hosts so this run must
    # really touch both.
    for host in sandbox_state["hosts"]:
        ssh(sandbox_state, host["address"], f"rm -f {ENV_FILE} {APT_PROXY}")
    return deploy_json(kit_env)


def test_a_run_changes_both_hosts(first_run, sandbox_state):
    addresses = sorted(host["address"] for host in sandbox_state["hosts"])
    changed = changed_hosts(first_run)
    assert first_run["results"]["failed_hosts"] == []
    assert changed[SECRETS_STEP] == addresses
    assert changed["base | Send apt through the proxy"] == addresses


def test_testinfra_checks_pass_over_ssh(first_run, kit_env):
    verify = run_verify(kit_env)
    assert verify.returncode == 0, verify.stdout[-4000:]
    assert " passed" in verify.stdout and " failed" not in verify.stdout


def test_packages_come_through_the_proxy_setting(first_run, sandbox_state):
    # The hosts have no route out: apt works only through the kit's proxy setting.
    host = sandbox_state["hosts"][0]["address"]
    update = ssh(sandbox_state, host, "apt-get update -qq 2>&1; echo rc=$?", check=False)
    assert "rc=0" in update.stdout, update.stdout


# A package whose postinst holds dpkg's lock for a while, as unattended-upgrades does on a fresh host.
LOCK_HOLDER = r"""set -e
d=$(mktemp -d); mkdir -p "$d/pkg/DEBIAN"
printf 'Package: openclaw-kit-lock-test\nVersion: 1\nArchitecture: all\nMaintainer: kit <kit@localhost>\nDescription: holds the dpkg lock\n' >"$d/pkg/DEBIAN/control"
printf '#!/bin/sh\nsleep 8\n' >"$d/pkg/DEBIAN/postinst"; chmod 755 "$d/pkg/DEBIAN/postinst"
dpkg-deb -b "$d/pkg" "$d/holder.deb" >/dev/null
dpkg -i "$d/holder.deb" >/dev/null & sleep 2
start=$(date +%s); rc=0
DEBIAN_FRONTEND=noninteractive apt-get {options} install -y -qq ca-certificates >/dev/null 2>"$d/err" || rc=$?
echo "rc=$rc waited=$(( $(date +%s) - start ))"; cat "$d/err"
wait; dpkg -r openclaw-kit-lock-test >/dev/null; rm -rf "$d"
"""


@pytest.mark.parametrize("options, waits", [("", True), ("-o DPkg::Lock::Timeout=0", False)],
                         ids=["kit's setting", "without it"])
def test_apt_waits_for_dpkgs_lock_instead_of_failing(first_run, sandbox_state, options, waits):
    host = sandbox_state["hosts"][0]["address"]
    out = ssh(sandbox_state, host, LOCK_HOLDER.format(options=options)).stdout
    if waits:
        assert out.startswith("rc=0 ") and int(out.split("waited=")[1].split()[0]) >= 3, out
    else:
        assert not out.startswith("rc=0 ") and "lock" in out, out


def test_second_run_changes_nothing(first_run, kit_env):
    second = deploy_json(kit_env)
    assert changed_hosts(second) == {}
    assert second["results"]["totals"]["error"] == 0
