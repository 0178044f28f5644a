"""The gateway role on real hosts: drift is corrected by a re-run; a config OpenClaw rejects never goes live."""

import shutil
import subprocess
import sys

import pytest

from openclaw_kit.platform import PLATFORMS
from roles.openclaw import ENV_FILE
from roles.openclaw.systemd import LIVE_CONFIG, SERVICE, UNIT, USER
from tests.integration.conftest import REPO, assert_drift_corrected, changed_hosts, deploy_json, ssh

NOLOGIN = PLATFORMS[("Debian", 13, None)].nologin  # the sandbox hosts'

pytestmark = pytest.mark.sandbox

HEALTHZ = "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:18789/healthz', timeout=5).status)\""


@pytest.fixture(scope="module")
def deployed(sandbox_state, kit_env):
    first = deploy_json(kit_env)
    assert first["results"]["failed_hosts"] == []
    return sandbox_state["hosts"][0]["address"]


def healthy(state, address) -> bool:
    return ssh(state, address, HEALTHZ, check=False).stdout.strip() == "200"


DRIFTS = {
    "unit file edited": (
        f"sed -i 's/^NoNewPrivileges=yes/NoNewPrivileges=no/' {UNIT} && systemctl daemon-reload",
        f"grep -qx NoNewPrivileges=yes {UNIT}",
    ),
    "config edited": (
        f"python3 -c \"import json; p='{LIVE_CONFIG}'; c=json.load(open(p)); c['gateway']['controlUi']['allowedOrigins']=['*']; json.dump(c, open(p, 'w'))\"",
        f"python3 -c \"import json, sys; c=json.load(open('{LIVE_CONFIG}')); sys.exit(c['gateway']['controlUi']['allowedOrigins'] == ['*'])\"",
    ),
    "secret file made 0644": (f"chmod 644 {ENV_FILE}", f"test $(stat -c %a {ENV_FILE}) = 600"),
    "service stopped": (f"systemctl stop {SERVICE}", f"systemctl is-active -q {SERVICE}"),
    # The deploy checks the account with one getent instead of server.user's full read: a changed
    # shell must still be seen.
    "service user given a login shell": (f"usermod -s /bin/bash {USER}", f"test $(getent passwd {USER} | cut -d: -f7) = {NOLOGIN}"),
}


@pytest.mark.parametrize("drift", DRIFTS, ids=list(DRIFTS))
def test_drift_is_corrected_by_a_rerun(deployed, sandbox_state, kit_env, drift):
    assert_drift_corrected(sandbox_state, kit_env, deployed, *DRIFTS[drift])
    assert healthy(sandbox_state, deployed)


def test_config_openclaw_rejects_never_goes_live(deployed, sandbox_state, kit_env, tmp_path):
    before_pid = ssh(sandbox_state, deployed, f"systemctl show -p MainPID --value {SERVICE}").stdout.strip()
    before_config = ssh(sandbox_state, deployed, f"sha256sum {LIVE_CONFIG}").stdout.split()[0]
    # A copy of the kit whose template adds a key OpenClaw's strict schema does not know: settings
    # validation cannot catch it, only `openclaw config validate` on the host can.
    kit = tmp_path / "kit"
    shutil.copytree(REPO, kit, ignore=shutil.ignore_patterns(".git", ".venv", ".env", "__pycache__", ".pytest_cache"))
    template = kit / "templates/openclaw/openclaw.json5.j2"
    template.write_text(template.read_text().replace('"discovery": {', '"discovery": {"notAnOpenClawKey": true, ', 1))

    run = subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", "--limit", deployed, "inventories/sandbox.py", "deploy.py"],
        cwd=kit, env=kit_env, capture_output=True, text=True, timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "notAnOpenClawKey" in output, output[-3000:]  # OpenClaw's own message names the key
    assert ssh(sandbox_state, deployed, f"systemctl show -p MainPID --value {SERVICE}").stdout.strip() == before_pid
    assert ssh(sandbox_state, deployed, f"sha256sum {LIVE_CONFIG}").stdout.split()[0] == before_config
    assert healthy(sandbox_state, deployed)

    # The rejected config reached neither the live config nor the desired file: with the real kit
    # again, nothing of the gateway changes and it is not restarted.
    rerun = changed_hosts(deploy_json(kit_env))
    assert not [name for name in rerun if name.startswith("openclaw |")], rerun
    assert healthy(sandbox_state, deployed)
