"""Role logs: rendered configs checked by the real logrotate, the job runner run for real, the
drift report's reading of pyinfra's JSON."""

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openclaw_kit import drift
from openclaw_kit.layout import JOB_METRICS_PREFIX
from openclaw_kit.settings import SettingsError, validate_hosts
from openclaw_kit.templates import render
from roles import logs
from tests.unit.fake_host import ENV, fake_inventory

BASE = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}
REPO = Path(__file__).resolve().parents[2]
LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"
needs_logrotate = pytest.mark.skipif(not Path(LOGROTATE).exists() or os.geteuid() != 0,
                                     reason="needs logrotate and root on the controller (./kit installs logrotate)")


def settings(**data):
    return validate_hosts({"gw": {**BASE, **data}}, ENV)["gw"]


# --- settings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "value"), [("log_retention_days", 0), ("audit_retention_days", 40000), ("backup_retention_days", 0)])
def test_retention_out_of_range_is_a_settings_error(setting, value):
    with pytest.raises(SettingsError) as caught:
        settings(**{setting: value})
    assert caught.value.problems[0].startswith(f"host gw: {setting} = {value}: "), caught.value.problems


# --- rendering -----------------------------------------------------------------------------------------


def logrotate_config(s, root: Path | None = None, service_user: str = "openclaw") -> str:
    """The kit's logrotate config; with root, every path moved under it (to run logrotate on the controller)."""
    data = {**logs.logrotate_data(s), "service_user": service_user}
    if root is not None:
        data.update(gateway_log=f"{root}/openclaw/gateway.log", nginx_logs=f"{root}/nginx/*.log", nginx_pid=f"{root}/nginx.pid",
                    audit_log=f"{root}/audit/audit.log", audit_dir=f"{root}/audit", state=f"{root}/state")
    return render("logs", "logrotate.conf.j2", **data)


def stanzas(config: str) -> dict[str, list[str]]:
    found, current = {}, None
    for line in config.splitlines():
        line = line.strip()
        if line.endswith("{"):
            current = found.setdefault(line[:-1].strip(), [])
        elif line == "}":
            current = None
        elif current is not None:
            current.append(line)
    return found


def test_retention_comes_from_settings():
    found = stanzas(logrotate_config(settings(log_retention_days=30, audit_retention_days=400)))
    assert set(found) == {"/var/log/openclaw/gateway.log", "/var/log/nginx/*.log", "/var/log/openclaw-kit/audit/audit.log"}
    for path in ("/var/log/openclaw/gateway.log", "/var/log/nginx/*.log"):
        assert {"rotate 30", "maxage 30", "daily", "compress", "delaycompress"} <= set(found[path]), path
    audit = found["/var/log/openclaw-kit/audit/audit.log"]
    assert {"daily", "rotate 400", "nocompress", "create 0640 root adm"} <= set(audit)
    assert any(f"-mmin +{400 * 1440} -delete" in line for line in audit)
    assert any(f"-mmin +{90 * 1440} -exec gzip" in line for line in audit)


def test_no_copytruncate_the_gateway_reopens_by_path():
    # OpenClaw opens its log per write batch: a rename loses nothing, copytruncate could.
    config = logrotate_config(settings())
    assert "copytruncate" not in [line.strip() for line in config.splitlines() if not line.strip().startswith("#")]
    assert "su openclaw openclaw" in stanzas(config)["/var/log/openclaw/gateway.log"]


def test_cron_jobs_all_run_through_the_runner():
    text = render("logs", "cron.j2", jobs=logs.cron_jobs(), audit_log=logs.AUDIT_LOG)
    entries = [line.split() for line in text.splitlines() if line and line[0].isdigit()]
    assert [entry[7] for entry in entries] == ["logrotate", "security-audit", "backup"]
    for entry in entries:
        minute, hour = entry[0], entry[1]
        assert 0 <= int(minute) < 60 and (hour == "*" or 0 <= int(hour) < 24)
        assert entry[5] == "root" and entry[6] == logs.JOB and "--" in entry
    assert f"--state {logs.LOGROTATE_STATE} {logs.LOGROTATE_CONF}" in text
    assert f"{logs.GATEWAY_CLI} security audit --json" in text
    assert text.endswith("\n"), "cron ignores a last line without a newline"


def test_journald_dropin():
    text = render("logs", "journald.conf.j2", retention_days=21, **logs.JOURNAL_LIMITS)
    lines = set(text.splitlines())
    assert {"[Journal]", "Storage=persistent", "SystemMaxUse=1G", "MaxRetentionSec=21day"} <= lines


def test_backup_script_keeps_retention_and_is_valid_bash(tmp_path):
    script = tmp_path / "backup"
    script.write_text(render("logs", "openclaw-kit-backup.j2", cli=logs.GATEWAY_CLI, staging=logs.BACKUP_STAGING, store=logs.BACKUP_STORE,
                             retention_days=9))
    assert f"-mmin +{9 * 1440}" in script.read_text()
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


# --- the real logrotate on the controller ----------------------------------------------------------------


@needs_logrotate
def test_logrotate_accepts_the_config():
    check = subprocess.run([LOGROTATE, "-d", "--state", "/dev/null", "/dev/stdin"], input=logrotate_config(settings(), service_user="root"),
                           capture_output=True, text=True)
    assert check.returncode == 0 and "error" not in check.stderr.lower(), check.stderr[-2000:]


@needs_logrotate
def test_audit_rotation_makes_files_read_only_compresses_and_deletes_by_age(tmp_path):
    for directory in ("openclaw", "nginx", "audit"):
        (tmp_path / directory).mkdir()
    config = tmp_path / "logrotate.conf"
    config.write_text(logrotate_config(settings(audit_retention_days=120), root=tmp_path, service_user="root"))
    audit = tmp_path / "audit"
    (audit / "audit.log").write_text('{"job":"x"}\n')
    day = 86400
    for name, age in (("audit.log-20250101-000000", 100), ("audit.log-20240101-000000", 130), ("audit.log-20260101-000000", 10)):
        (audit / name).write_text("old\n")
        os.utime(audit / name, (time.time() - age * day, time.time() - age * day))

    run = subprocess.run([LOGROTATE, "-f", "--state", str(tmp_path / "state"), str(config)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

    names = sorted(path.name for path in audit.iterdir())
    assert "audit.log-20240101-000000" not in names and "audit.log-20240101-000000.gz" not in names, "older than retention: deleted"
    assert "audit.log-20250101-000000.gz" in names, "older than 90 days: compressed"
    assert gzip.decompress((audit / "audit.log-20250101-000000.gz").read_bytes()) == b"old\n"
    assert "audit.log-20260101-000000" in names, "younger than 90 days: as it was"
    rotated = [path for path in audit.iterdir() if path.name != "audit.log"]
    assert len(rotated) == 3  # two of the old ones and today's
    assert all(path.stat().st_mode & 0o777 == 0o440 for path in rotated), {p.name: oct(p.stat().st_mode) for p in rotated}
    assert (audit / "audit.log").stat().st_size == 0 and (audit / "audit.log").stat().st_mode & 0o777 == 0o640


# --- the job runner, run for real ----------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path):
    env_file = tmp_path / "gateway.env"
    env_file.write_text("OPENCLAW_GATEWAY_TOKEN='sentinel-secret-value-123'\n")
    script = tmp_path / "openclaw-kit-job"
    script.write_text(render("logs", "openclaw-kit-job.j2", audit_log=tmp_path / "audit.log", env_file=env_file, timeout=5,
                             textfile_dir=tmp_path / "textfile", metrics_prefix=JOB_METRICS_PREFIX))
    return script, tmp_path / "audit.log"


def run_job(script, *args):
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=30)


def test_runner_records_a_json_line_with_the_trimmed_result(runner):
    script, audit = runner
    result = {"summary": {"critical": 0, "warn": 0}, "findings": [{"checkId": "a.b", "severity": "info", "title": "T", "detail": "long"}]}
    run = run_job(script, "security-audit", "--result-json", "--", "sh", "-c", f"echo '{json.dumps(result)}'")
    assert run.returncode == 0
    entry = json.loads(audit.read_text().splitlines()[-1])
    assert entry["job"] == "security-audit" and entry["exit"] == 0 and entry["start"] <= entry["end"]
    assert entry["result"] == {"summary": {"critical": 0, "warn": 0}, "findings": [{"checkId": "a.b", "severity": "info", "title": "T"}]}


def test_runner_records_failures_with_secrets_masked(runner):
    script, audit = runner
    run = run_job(script, "backup", "--", "sh", "-c", "echo 'failed with sentinel-secret-value-123' >&2; exit 3")
    assert run.returncode == 3
    entry = json.loads(audit.read_text().splitlines()[-1])
    assert entry["exit"] == 3 and "failed with ***" in entry["error"]
    assert "sentinel-secret-value" not in audit.read_text()


def test_runner_records_a_timeout(runner):
    script, audit = runner
    assert run_job(script, "slow", "--", "sleep", "10").returncode == 124
    assert json.loads(audit.read_text().splitlines()[-1])["exit"] == 124
    # Without role monitoring's textfile directory the runner writes no metrics (tests/unit/test_monitoring.py).
    assert not (audit.parent / "textfile").exists()


# --- the drift report reads pyinfra's JSON ------------------------------------------------------------

PLAN = [
    {"name": "base | Send apt through the proxy", "hosts_with_change": [], "hosts_with_conditional_change": []},
    {"name": "logs | Cron jobs /etc/cron.d/openclaw-kit-logs", "hosts_with_change": ["h2"], "hosts_with_conditional_change": []},
    {"name": "logs | Run the scheduled jobs once (outcomes in the audit log)", "hosts_with_change": [],
     "hosts_with_conditional_change": ["h1", "h2"]},
    {"name": "Loose operation", "hosts_with_change": ["h2"], "hosts_with_conditional_change": []},
]
RESULTS = {"operations": [
    {"name": "base | Send apt through the proxy", "success": ["h1"], "no_change": ["h2"], "error": []},
    {"name": "logs | Cron jobs /etc/cron.d/openclaw-kit-logs", "success": [], "no_change": ["h1"], "error": ["h2"]},
]}


def test_drift_lists_what_would_change_per_host():
    assert drift.drifted(PLAN) == {"h2": ["logs | Cron jobs /etc/cron.d/openclaw-kit-logs", "Loose operation"]}
    counts = drift.plan_counts(PLAN, ["h1", "h2"])
    assert counts["h1"]["logs"] == {"would change": 0, "conditional": 1}
    assert counts["h2"]["logs"] == {"would change": 1, "conditional": 1}
    assert counts["h2"][drift.NO_ROLE] == {"would change": 1, "conditional": 0}


def test_summary_table_counts_per_host_and_role():
    counts = drift.result_counts(RESULTS)
    assert counts["h1"]["base"] == {"changed": 1, "unchanged": 0, "failed": 0}
    assert counts["h2"]["logs"] == {"changed": 0, "unchanged": 0, "failed": 1}
    lines = drift.table(counts).splitlines()
    assert lines[0].split() == ["host", "role", "changed", "unchanged", "failed"]
    assert lines[2].split() == ["h1", "base", "1", "0", "0"]


def test_a_deploy_ends_with_the_table_and_json_stays_parseable(tmp_path):
    """The whole deploy against pyinfra's fake connector: the table goes to stderr, --json to stdout."""
    (tmp_path / "inventory.py").write_text(fake_inventory())
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "--json", str(tmp_path / "inventory.py"), "deploy.py"],
                         cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    results = json.loads(run.stdout[run.stdout.index("{"):])["results"]
    assert "logs | Cron jobs /etc/cron.d/openclaw-kit-logs" in [op["name"] for op in results["operations"]]
    assert "--> Per role:" in run.stderr
    table = run.stderr.split("--> Per role:", 1)[1]
    assert "@fake/gw1" in table and " logs " in table


def test_drift_report_on_a_fresh_host_exits_1_and_never_shows_a_secret(tmp_path):
    """The report end to end against pyinfra's fake connector (a fresh host: everything would change)."""
    (tmp_path / "inventory.py").write_text(fake_inventory())
    sentinel = "SENTINEL" * 8
    run = subprocess.run([sys.executable, "-m", "openclaw_kit.drift", str(tmp_path / "inventory.py")], cwd=REPO,
                         env={**os.environ, "OPENCLAW_GATEWAY_TOKEN": sentinel}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, (run.stdout + run.stderr)[-3000:]
    assert run.stdout.startswith("@fake/gw1: DRIFTED, ")
    assert "  - logs | Cron jobs /etc/cron.d/openclaw-kit-logs" in run.stdout
    assert "SENTINEL" not in run.stdout + run.stderr


def test_drift_report_exits_2_when_pyinfra_cannot_run(tmp_path):
    (tmp_path / "inventory.py").write_text(fake_inventory(log_retention_days=0))
    run = subprocess.run([sys.executable, "-m", "openclaw_kit.drift", str(tmp_path / "inventory.py")], cwd=REPO, env={**os.environ, **ENV},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "host @fake/gw1: log_retention_days = 0: " in run.stderr
