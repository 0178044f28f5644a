"""Upgrades on a real host: OpenClaw 2026.9.5 on Node.js 24.21.0 -> 2026.9.6 on 24.22.3 by changing
the settings and re-running; a release whose gateway exits at start is rolled back, the old gateway
serves again with its state, the deploy fails saying so, and the next run converges.

Runs on the second sandbox host only (`--limit`) and leaves it on the default versions, as the other
modules expect it. The bound for a healthy gateway is raised to 10 minutes: the sandbox shares two
cores with everything else, and OpenClaw 2026.9.6 migrates 2026.9.5's state on its first start (over
3 minutes was seen on a machine at load 20).
"""

import pytest

from openclaw_kit.settings.openclaw import OpenclawSettings
from roles.openclaw import CURRENT, PREFIX
from roles.openclaw.systemd import SERVICE, STATE_DIR, USER
from tests.integration.conftest import changed_hosts, deploy_json, inventory_with, run_pyinfra, ssh

pytestmark = pytest.mark.sandbox

OLD = {"openclaw_version": "2026.9.5", "node_version": "24.21.0"}
NEW = {"openclaw_version": "2026.9.6", "node_version": "24.22.3"}
DEFAULT = {name: OpenclawSettings.model_fields[name].default for name in OLD}
SLOW_HOST = {"gateway_start_timeout_seconds": 600}
MARKER = f"{STATE_DIR}/upgrade-test-marker"
HEALTHY = ("python3 -c \"import urllib.request as u; "
           "print(*(u.urlopen('http://127.0.0.1:18789' + p, timeout=5).status for p in ('/healthz', '/readyz')))\"")


def release(versions: dict) -> str:
    return f"{PREFIX}/releases/openclaw-{versions['openclaw_version']}-node-v{versions['node_version']}"


def running(state: dict, address: str) -> dict:
    """What the host runs: the release `current` points at, the Node.js binary of the gateway's process
    and whether it answers /healthz and /readyz."""
    pid = ssh(state, address, f"systemctl show -p MainPID --value {SERVICE}").stdout.strip()
    return {
        "current": ssh(state, address, f"readlink {CURRENT}").stdout.strip(),
        "node": ssh(state, address, f"readlink -f /proc/{pid}/exe", check=False).stdout.strip(),
        "healthy": ssh(state, address, HEALTHY, check=False).stdout.strip() == "200 200",
        "pid": pid,
    }


def releases(state: dict, address: str) -> list[str]:
    return ssh(state, address, f"ls -d {PREFIX}/releases/* {PREFIX}/node-v*").stdout.split()


@pytest.fixture(scope="module")
def host(sandbox_state):
    return sandbox_state["hosts"][1]["address"]


def deploy(env: dict, tmp_path, address: str, versions: dict) -> dict:
    return deploy_json(env, "--limit", address, inventory=inventory_with(tmp_path, **versions, **SLOW_HOST))


@pytest.fixture(scope="module")
def on_old(sandbox_state, kit_env, host, tmp_path_factory):
    """The host on 2026.9.5 / 24.21.0, with state of its own the upgrade must keep."""
    # The suite's hosts ran 2026.9.6, which migrated the state and agent databases to schemas 2026.9.5
    # refuses to start on: start from a host whose gateway never ran 2026.9.6 (all of its state gone
    # but the kit's config and the compile cache).
    ssh(sandbox_state, host, f"systemctl stop {SERVICE} 2>/dev/null; "
                             f"find {STATE_DIR} -mindepth 1 -maxdepth 1 ! -name openclaw.json ! -name .cache -exec rm -rf {{}} +")
    result = deploy(kit_env, tmp_path_factory.mktemp("old"), host, OLD)
    assert result["results"]["failed_hosts"] == []
    ssh(sandbox_state, host, f"echo before-the-upgrade > {MARKER} && chown {USER}: {MARKER}")
    assert running(sandbox_state, host)["current"] == release(OLD)
    return host


def test_changing_the_versions_upgrades_the_host(on_old, sandbox_state, kit_env, tmp_path):
    before = running(sandbox_state, on_old)
    upgrade = changed_hosts(deploy(kit_env, tmp_path, on_old, NEW))
    assert "openclaw | Switch to OpenClaw 2026.9.6 on Node.js 24.22.3, rolled back unless healthy" in upgrade
    after = running(sandbox_state, on_old)
    assert after == {"current": release(NEW), "node": f"{PREFIX}/node-v24.22.3/bin/node", "healthy": True, "pid": after["pid"]}
    assert after["pid"] != before["pid"]
    # The old release and its Node.js are gone once the new one is healthy; the state is kept.
    assert releases(sandbox_state, on_old) == [f"{PREFIX}/node-v24.22.3", release(NEW)]
    assert ssh(sandbox_state, on_old, f"cat {MARKER}").stdout == "before-the-upgrade\n"
    assert changed_hosts(deploy(kit_env, tmp_path, on_old, NEW)) == {}, "an upgraded host converges"


def test_a_release_whose_gateway_exits_at_start_is_rolled_back(on_old, sandbox_state, kit_env, tmp_path):
    # The next release (the defaults: Node.js back to 24.21.0) is installed beside the running one,
    # but broken: its gateway exits at start while the rest of its CLI (config validate) works.
    # The deploy finds it installed and goes straight to the switch.
    broken = release(DEFAULT)
    assert broken != running(sandbox_state, on_old)["current"]
    ssh(sandbox_state, on_old, f"""set -e
cp -al {release(NEW)} {broken}
ln -sfn {PREFIX}/node-v{DEFAULT['node_version']}/bin/node {broken}/bin/node
rm {broken}/bin/openclaw
cat > {broken}/bin/openclaw <<'EOF'
#!/bin/sh
if [ "$1" = gateway ]; then echo "this release's gateway cannot start" >&2; exit 1; fi
exec "$(dirname "$0")/node" "$(dirname "$0")/../lib/node_modules/openclaw/openclaw.mjs" "$@"
EOF
chmod 755 {broken}/bin/openclaw""")
    state_before = ssh(sandbox_state, on_old, f"stat -c '%U %a' {MARKER} && cat {MARKER}").stdout

    failed = run_pyinfra(kit_env, "--limit", on_old, inventory=inventory_with(tmp_path, **DEFAULT, **SLOW_HOST))
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert ("UPGRADE FAILED, ROLLED BACK: OpenClaw 2026.9.6 on Node.js 24.21.0 did not become healthy "
            "(the gateway exited while starting") in output, output[-3000:]
    assert f"{CURRENT} points at OpenClaw 2026.9.6 on Node.js 24.22.3 again, which is running and healthy" in output
    assert "this release's gateway cannot start" in output  # the gateway's own last words, from the journal

    # The old gateway serves again, on its own release, with its state; the broken release is gone.
    after = running(sandbox_state, on_old)
    assert (after["current"], after["node"], after["healthy"]) == (release(NEW), f"{PREFIX}/node-v24.22.3/bin/node", True)
    assert ssh(sandbox_state, on_old, f"stat -c '%U %a' {MARKER} && cat {MARKER}").stdout == state_before
    assert releases(sandbox_state, on_old) == [f"{PREFIX}/node-v24.22.3", release(NEW)]

    # The next run installs the release afresh and switches; the one after changes nothing.
    fixed = changed_hosts(deploy(kit_env, tmp_path, on_old, DEFAULT))
    assert "openclaw | Install OpenClaw 2026.9.6" in fixed
    assert running(sandbox_state, on_old)["current"] == broken and running(sandbox_state, on_old)["healthy"]
    assert releases(sandbox_state, on_old) == [f"{PREFIX}/node-v{DEFAULT['node_version']}", broken]
    assert ssh(sandbox_state, on_old, f"cat {MARKER}").stdout == "before-the-upgrade\n"
    assert changed_hosts(deploy(kit_env, tmp_path, on_old, DEFAULT)) == {}
