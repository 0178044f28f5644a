"""Role backup on real hosts: sbx1 backs up over SFTP to a backup account on sbx2 (the key made on sbx1,
sbx2's host key checked strictly); gateway state made before the backup survives a wipe and a restore;
verify; a second deploy changes nothing; a bad repository and a literal secret stop the deploy."""

import json
import subprocess
import sys
import uuid

import pytest

from openclaw_kit.layout import GATEWAY_CLI
from roles.backup import CRON_FILE, PASSWORD_FILE, RESTIC, RESTORE, SSH_KEY
from roles.logs import AUDIT_LOG, LOGROTATE_CONF, LOGROTATE_STATE
from roles.openclaw.systemd import STATE_DIR
from tests.integration.conftest import REPO, changed_hosts, deploy_json, inventory_with_first_host, run_pyinfra, ssh

pytestmark = pytest.mark.sandbox

TARGET_USER = "kitbackup"
PASSWORD_VAR = "KIT_TEST_RESTIC_PASSWORD"
# New each run: a kept sandbox still has the last run's agent.
AGENT = f"probe{uuid.uuid4().hex[:8]}"


def inventory_with_offsite(tmp_path, offsite: dict | None) -> str:
    """The sandbox inventory with offsite_backup on the first host only (sbx2 is the target)."""
    return inventory_with_first_host(tmp_path / "inventory-backup.py", offsite_backup=offsite)


@pytest.fixture(scope="module")
def hosts(sandbox_state):
    return sorted(host["address"] for host in sandbox_state["hosts"])


@pytest.fixture(scope="module")
def backup_env(kit_env):
    from openclaw_kit.secrets import generate_token

    return {**kit_env, PASSWORD_VAR: generate_token()}


@pytest.fixture(scope="module")
def target(sandbox_state, hosts):
    """A backup account on sbx2 and the settings that point sbx1 at it."""
    source, destination = hosts
    ssh(sandbox_state, destination, f"id {TARGET_USER} >/dev/null 2>&1 || useradd --create-home --shell /bin/sh {TARGET_USER}; "
                                    f"install -d -m 700 -o {TARGET_USER} -g {TARGET_USER} /home/{TARGET_USER}/.ssh; "
                                    f"rm -rf /home/{TARGET_USER}/restic /home/{TARGET_USER}/.ssh/authorized_keys")
    host_key = " ".join(ssh(sandbox_state, destination, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2])
    # A key left by an earlier run would skip the key's first showing; this run starts from none.
    ssh(sandbox_state, source, f"rm -f {SSH_KEY} {SSH_KEY}.pub")
    return {"repository": f"sftp:{TARGET_USER}@{destination}:/home/{TARGET_USER}/restic", "password": f"${{{PASSWORD_VAR}}}",
            "sftp_host_key": host_key, "keep_daily": 3}


@pytest.fixture(scope="module")
def deployed(sandbox_state, hosts, target, backup_env, tmp_path_factory):
    source, destination = hosts
    inventory = inventory_with_offsite(tmp_path_factory.mktemp("backup"), target)
    run = run_pyinfra(backup_env, inventory=inventory)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    public_key = ssh(sandbox_state, source, f"cat {SSH_KEY}.pub").stdout.strip()
    # The deploy shows the public key to authorize; the private one stays on the host.
    assert public_key.startswith("ssh-ed25519 ") and public_key in run.stdout + run.stderr
    assert "PRIVATE KEY" not in run.stdout + run.stderr
    assert backup_env[PASSWORD_VAR] not in run.stdout + run.stderr
    assert ssh(sandbox_state, source, f"stat -c '%U %a' {SSH_KEY} {PASSWORD_FILE}").stdout.split() == ["root", "600", "root", "600"]
    # Authorize it on the target, as the README tells a user to; the deploy's own first try was
    # refused there (the key was new), so fail2ban may have counted it.
    ssh(sandbox_state, destination, f"printf 'restrict %s\\n' '{public_key}' > /home/{TARGET_USER}/.ssh/authorized_keys && "
                                    f"chown {TARGET_USER}: /home/{TARGET_USER}/.ssh/authorized_keys && chmod 600 /home/{TARGET_USER}/.ssh/authorized_keys && "
                                    "fail2ban-client unban --all >/dev/null")
    return inventory


def latest_outcome(state, address, job) -> dict:
    entries = [json.loads(line) for line in ssh(state, address, f"cat {AUDIT_LOG}").stdout.splitlines() if line.strip()]
    return [entry for entry in entries if entry["job"] == job][-1]


def agents(state, address) -> list[str]:
    listed = json.loads(ssh(state, address, f"{GATEWAY_CLI} agents list --json").stdout)
    return [agent.get("id") for agent in (listed if isinstance(listed, list) else listed.get("agents", []))]


def test_backup_over_sftp_then_wipe_and_restore_brings_the_state_back(deployed, sandbox_state, hosts, backup_env):
    source, destination = hosts
    # State worth restoring: an agent, created through the CLI as the service runs it.
    ssh(sandbox_state, source, f"{GATEWAY_CLI} agents add {AGENT} --workspace {STATE_DIR}/workspace-{AGENT} --non-interactive --json")
    assert AGENT in agents(sandbox_state, source)

    # A rotated audit file to go off the host with the archive.
    ssh(sandbox_state, source, f"logrotate -f --state {LOGROTATE_STATE} {LOGROTATE_CONF}")
    rotated = ssh(sandbox_state, source, f"ls {AUDIT_LOG}-*").stdout.split()
    assert rotated

    # The local backup, then the off-host copy, exactly as cron runs them.
    cron = ssh(sandbox_state, source, f"cat /etc/cron.d/openclaw-kit-logs {CRON_FILE}").stdout
    commands = [line.split(None, 6)[6] for line in cron.splitlines() if line[:1].isdigit() and "backup" in line]
    assert len(commands) == 2 and commands[1].endswith("openclaw-kit-offsite-backup")
    for command in commands:
        run = ssh(sandbox_state, source, f"/bin/sh -c '{command}'", check=False)
        assert run.returncode == 0, f"{command}: {run.stderr[-2000:]} {latest_outcome(sandbox_state, source, 'offsite-backup')}"
    outcome = latest_outcome(sandbox_state, source, "offsite-backup")
    assert outcome["exit"] == 0 and outcome["result"]["state_snapshot"], outcome
    assert outcome["result"]["audit_snapshot"] and outcome["result"]["audit_files"] == len(rotated), outcome
    audit_snapshots = json.loads(ssh(sandbox_state, source, f"{RESTIC} snapshots --json --tag audit-log --latest 1").stdout)
    assert sorted(audit_snapshots[-1]["paths"]) == sorted(rotated)
    # The repository lives on sbx2, encrypted: no archive name or JSON in it in the clear.
    listing = ssh(sandbox_state, destination, f"ls /home/{TARGET_USER}/restic && grep -rl openclaw-backup /home/{TARGET_USER}/restic || true").stdout
    assert "config" in listing.split() and "openclaw-backup" not in listing
    snapshots = json.loads(ssh(sandbox_state, source, f"{RESTIC} snapshots --json --tag gateway-state").stdout)
    assert snapshots[-1]["short_id"] == outcome["result"]["state_snapshot"][:8] or snapshots[-1]["id"].startswith(outcome["result"]["state_snapshot"])

    verify = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify/test_backup.py",
                             "--inventory", deployed], cwd=REPO, env=backup_env, capture_output=True, text=True, timeout=600)
    assert verify.returncode == 0, verify.stdout[-4000:]

    # Wipe the gateway's state, then restore the latest snapshot.
    ssh(sandbox_state, source, f"systemctl stop openclaw-gateway && find {STATE_DIR} -mindepth 1 -delete")
    restore = ssh(sandbox_state, source, RESTORE, check=False)
    assert restore.returncode == 0, restore.stdout + restore.stderr[-3000:]
    assert ssh(sandbox_state, source, "systemctl is-active openclaw-gateway").stdout.strip() == "active"
    assert ssh(sandbox_state, source, f"stat -c '%U %G %a' {STATE_DIR} {STATE_DIR}/openclaw.json").stdout.split() == \
        ["openclaw", "openclaw", "700", "openclaw", "openclaw", "600"]
    assert AGENT in agents(sandbox_state, source)
    health = ssh(sandbox_state, source, "/opt/openclaw/current/bin/node -e \"fetch('http://127.0.0.1:18789/healthz')"
                                        ".then(async r => console.log(r.status, await r.text()))\"").stdout
    assert health.startswith("200"), health

    # The restore left the host as the kit wants it: a second deploy changes nothing.
    assert changed_hosts(deploy_json(backup_env, inventory=deployed)) == {}


def test_a_bad_repository_and_a_literal_secret_stop_the_deploy_before_any_change(sandbox_state, hosts, target, backup_env, tmp_path):
    literal = "literal-restic-password-never-echoed"
    inventory = inventory_with_offsite(tmp_path, {**target, "repository": "ftp://backup.example/restic", "password": literal})
    run = run_pyinfra(backup_env, inventory=inventory)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "2 settings problems; no host was changed" in output
    assert f"host {hosts[0]}: offsite_backup.repository = 'ftp://backup.example/restic': must be a restic repository" in output
    assert f"host {hosts[0]}: offsite_backup.password = <literal value hidden, {len(literal)} characters>: must be a ${{VAR}} reference" in output
    assert literal not in output
