"""The logs role on real hosts: the scheduled jobs run for real, a rotation under load loses no line,
the drift report and verify on a drifted host, and a re-run that puts everything back."""

import json
import subprocess
import sys
import uuid

import pytest

from roles.logs import AUDIT_DIR, AUDIT_LOG, BACKUP_STORE, CRON_FILE, JOURNALD_DROPIN, LOGROTATE_CONF, LOGROTATE_STATE
from roles.openclaw import LOG_FILE
from tests.integration.conftest import REPO, changed_hosts, deploy_json, ssh

pytestmark = pytest.mark.sandbox

CRON_OP = f"logs | Cron jobs {CRON_FILE}"
LOGROTATE_OP = f"logs | logrotate config {LOGROTATE_CONF}"
JOURNALD_OP = f"logs | journald drop-in {JOURNALD_DROPIN}"
JOURNALD_RESTART = "logs | Restart journald for its new settings"

# Makes the gateway write to its log: each WebSocket upgrade closed before the handshake is logged
# with the request's Host header, which carries a numbered marker.
WRITER = r'''
import base64, os, socket, sys, time
run, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    s = socket.create_connection(("127.0.0.1", 18789))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET / HTTP/1.1\r\nHost: {run}-{i}.rotation.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    s.recv(100)
    s.close()
    time.sleep(0.01)
'''


@pytest.fixture(scope="module")
def deployed(sandbox_state, kit_env):
    # Other modules may have deployed already: take the schedule away on both hosts so this run
    # must really put it back.
    addresses = sorted(host["address"] for host in sandbox_state["hosts"])
    for address in addresses:
        ssh(sandbox_state, address, f"rm -f {CRON_FILE}")
    result = deploy_json(kit_env)
    assert result["results"]["failed_hosts"] == []
    assert changed_hosts(result)[CRON_OP] == addresses
    return addresses


def audit_entries(state, address) -> list[dict]:
    return [json.loads(line) for line in ssh(state, address, f"cat {AUDIT_LOG}").stdout.splitlines() if line.strip()]


def test_the_cron_commands_record_their_outcomes(deployed, sandbox_state):
    address = deployed[0]
    started = ssh(sandbox_state, address, "date -u +%Y-%m-%dT%H:%M:%S+00:00").stdout.strip()
    cron = ssh(sandbox_state, address, f"cat {CRON_FILE}").stdout
    commands = [line.split(None, 6)[6] for line in cron.splitlines() if line[:1].isdigit()]
    assert len(commands) == 3
    for command in commands:  # exactly as cron runs them (as root, with /bin/sh)
        run = ssh(sandbox_state, address, f"/bin/sh -c '{command}'", check=False)
        assert run.returncode == 0, f"{command}: {run.stderr[-2000:]}"

    recent = {entry["job"]: entry for entry in audit_entries(sandbox_state, address) if entry["start"] >= started}
    assert set(recent) == {"logrotate", "security-audit", "backup"}
    for job, entry in recent.items():
        assert entry["exit"] == 0 and entry["host"] and entry["start"] <= entry["end"], entry
    assert recent["security-audit"]["result"]["summary"]["critical"] == 0
    assert recent["security-audit"]["result"]["summary"]["warn"] == 0
    archive = recent["backup"]["result"]["archive"]
    assert archive.startswith(f"{BACKUP_STORE}/")
    assert ssh(sandbox_state, address, f"stat -c '%U %a' {archive}").stdout.split() == ["root", "400"]
    journal = ssh(sandbox_state, address, f"journalctl -t openclaw-kit --since '{started[:19].replace('T', ' ')} UTC' -o cat").stdout
    assert all(f'"job":"{job}"' in journal for job in recent), journal[-2000:]


def test_forced_rotation_while_the_gateway_writes_loses_no_line(deployed, sandbox_state):
    address, run_id, count = deployed[0], f"r{uuid.uuid4().hex[:8]}", 400
    ssh(sandbox_state, address, f"cat > /tmp/kit-rotation-writer.py <<'EOF'\n{WRITER}\nEOF")
    rotate = f"logrotate -f --state {LOGROTATE_STATE} {LOGROTATE_CONF}"
    ssh(sandbox_state, address,
        f"python3 /tmp/kit-rotation-writer.py {run_id} {count} & "
        f"for k in 1 2 3; do sleep 1.5; {rotate} || exit 1; done; wait; sleep 3")
    per_file = ssh(sandbox_state, address,
                   f"for f in {LOG_FILE}*; do printf '%s %s\\n' \"$f\" \"$(zcat -f \"$f\" | grep -c '\"host\":\"{run_id}-')\"; done").stdout
    files_with_lines = [line for line in per_file.splitlines() if not line.endswith(" 0")]
    assert len(files_with_lines) >= 3, f"the rotations did not happen while the gateway wrote:\n{per_file}"
    found = ssh(sandbox_state, address,
                f"zcat -f {LOG_FILE}* | grep -o '\"host\":\"{run_id}-[0-9]*[.]' | sort -u").stdout.split()
    lost = sorted(set(range(count)) - {int(marker.rsplit("-", 1)[1].rstrip(".")) for marker in found})
    assert not lost, f"{len(lost)} of {count} lines lost (numbers {lost[:20]}):\n{per_file}"
    assert ssh(sandbox_state, address, f"stat -c '%U %a' {LOG_FILE}").stdout.split() == ["openclaw", "600"]
    ssh(sandbox_state, address, "rm -f /tmp/kit-rotation-writer.py")

    # The same forced rotation rotated the audit log: what is rotated is read-only, the new file root's.
    rotated = ssh(sandbox_state, address, f"stat -c '%n %U %G %a' {AUDIT_DIR}/audit.log-*").stdout.splitlines()
    assert rotated and all(line.split()[1:] == ["root", "adm", "440"] for line in rotated), rotated
    assert ssh(sandbox_state, address, f"stat -c '%U %G %a' {AUDIT_LOG}").stdout.split() == ["root", "adm", "640"]


def drift_report(env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "openclaw_kit.drift", "inventories/sandbox.py"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_drift_report_verify_and_a_rerun_on_a_drifted_host(deployed, sandbox_state, kit_env):
    clean, drifted = deployed
    report = drift_report(kit_env)
    assert report.returncode == 0, report.stdout + report.stderr[-2000:]
    assert f"{clean}: converged" in report.stdout and f"{drifted}: converged" in report.stdout

    journald_pid = ssh(sandbox_state, drifted, "systemctl show -p MainPID --value systemd-journald").stdout.strip()
    ssh(sandbox_state, drifted, f"rm {CRON_FILE} && echo '# edited by hand' >> {LOGROTATE_CONF} && "
                                f"sed -i 's/^SystemMaxUse=.*/SystemMaxUse=50G/' {JOURNALD_DROPIN}")

    report = drift_report(kit_env)
    assert report.returncode == 1, report.stdout + report.stderr[-2000:]
    assert f"{drifted}: DRIFTED, 3 operation(s) would change:" in report.stdout, report.stdout
    for op in (CRON_OP, LOGROTATE_OP, JOURNALD_OP):
        assert f"  - {op}" in report.stdout
    assert f"{clean}: converged" in report.stdout
    table = [line.split() for line in report.stdout.splitlines()]
    assert [drifted, "logs", "3"] in [row[:3] for row in table], report.stdout

    verify = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify/test_logs.py",
                             "--inventory", "inventories/sandbox.py"], cwd=REPO, env=kit_env, capture_output=True, text=True, timeout=600)
    assert verify.returncode != 0
    for check, message in (("test_cron_runs_the_kits_jobs", f"{CRON_FILE} is missing"),
                           ("test_logrotate_config_is_the_kits_and_logrotate_accepts_it", f"{LOGROTATE_CONF} differs from the kit's"),
                           ("test_journal_is_persistent_with_limits", f"{JOURNALD_DROPIN} differs from the kit's")):
        assert f"FAILED tests/verify/test_logs.py::{check}[{drifted}]" in verify.stdout, verify.stdout[-4000:]
        assert message in verify.stdout
    assert f"[{clean}]" not in "".join(line for line in verify.stdout.splitlines() if line.startswith("FAILED"))

    rerun = changed_hosts(deploy_json(kit_env))
    for op in (CRON_OP, LOGROTATE_OP, JOURNALD_OP, JOURNALD_RESTART):
        assert rerun.get(op) == [drifted], (op, rerun)
    assert ssh(sandbox_state, drifted, "systemctl show -p MainPID --value systemd-journald").stdout.strip() != journald_pid
    assert changed_hosts(deploy_json(kit_env)) == {}, "the run after the correction must change nothing"
    assert drift_report(kit_env).returncode == 0
