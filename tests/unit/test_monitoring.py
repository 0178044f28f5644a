"""Role monitoring: its settings' rules, the rendered configs (exact where it matters, never a secret),
Debian's promtool and amtool on them, `promtool test rules` for every alert (fires when it should,
silent when it should not), the check that keeps a broken rule away from the live files, and the
job runner's metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from openclaw_kit.layout import JOB_METRICS_PREFIX
from openclaw_kit.operations import check_then_promote_commands, promote_files_command
from openclaw_kit.settings import SettingsError, validate_hosts
from openclaw_kit.templates import render
from roles import monitoring
from roles.monitoring import KIT_UNITS, REJECTED, RULES_FILE, SCHEDULED_JOBS, check_command, commands, config_files
from tests.unit.fake_host import ENV, fake_inventory

REPO = Path(__file__).resolve().parents[2]
GOOD = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}
HOOK_TOKEN, SMTP_PASSWORD = "hook-sentinel-" + "h" * 30, "smtp-sentinel-" + "p" * 20
SECRETS_ENV = {**ENV, "HOOK_TOKEN": HOOK_TOKEN, "SMTP_PASSWORD": SMTP_PASSWORD}
WEBHOOK = {"url": "http://10.231.0.1:9999/alerts"}
EMAIL = {"smarthost": "smtp.example.com:587", "from_address": "alerts@example.com", "to": "ops@example.com",
         "user": "alerts", "password": "${SMTP_PASSWORD}"}
ALL_RECEIVERS = {"enabled": True, "webhook": {"url": "https://hooks.example.com/kit", "bearer_token": "${HOOK_TOKEN}"},
                 "email": EMAIL}
PROMTOOL, AMTOOL = shutil.which("promtool"), shutil.which("amtool")
needs_promtool = pytest.mark.skipif(not PROMTOOL, reason="needs promtool (Debian's prometheus; ./kit installs it)")
needs_amtool = pytest.mark.skipif(not AMTOOL, reason="needs amtool (Debian's prometheus-alertmanager; ./kit installs it)")


def settings(monitoring_settings: dict | None = None, **data):
    extra = {"monitoring": monitoring_settings} if monitoring_settings is not None else {}
    return validate_hosts({"gw1": {**GOOD, **extra, **data}}, SECRETS_ENV)["gw1"]


def enabled(**overrides) -> dict:
    return {"enabled": True, "webhook": WEBHOOK, **overrides}


# --- settings ------------------------------------------------------------------------------------------


def test_monitoring_is_off_by_default_and_needs_no_receiver_then():
    assert settings().monitoring.enabled is False
    assert settings({"enabled": False}).monitoring.webhook is None


@pytest.mark.parametrize(("data", "setting", "rule"), [
    ({"enabled": True}, "monitoring.webhook", "enabled monitoring needs a receiver (webhook or email)"),
    (enabled(retention_days=0), "monitoring.retention_days", "greater than or equal to 1"),
    (enabled(scrape_interval="30 seconds"), "monitoring.scrape_interval", "must be a duration like 30s"),
    (enabled(alerts={"gateway_down_for": "2"}), "monitoring.alerts.gateway_down_for", "must be a duration"),
    (enabled(alerts={"disk_used_percent": 100}), "monitoring.alerts.disk_used_percent", "less than or equal to 99"),
    (enabled(alerts={"daily_job_max_age_hours": 24}), "monitoring.alerts.daily_job_max_age_hours", "greater than or equal to 25"),
    (enabled(alerts={"disk_percent": 90}), "monitoring.alerts.disk_percent", "unknown setting; did you mean disk_used_percent?"),
    (enabled(webhook={"url": "ftp://x.example.com/"}), "monitoring.webhook.url", "must be an http:// or https:// URL"),
    (enabled(webhook={"url": "https://u:pw@x.example.com/"}), "monitoring.webhook.url", "must not carry credentials"),
    (enabled(webhook={"url": "http://x.example.com/", "bearer_token": "${HOOK_TOKEN}"}), "monitoring.webhook.url",
     "a bearer_token needs an https:// URL"),
    (enabled(email={**EMAIL, "smarthost": "smtp.example.com"}), "monitoring.email.smarthost", "must be the SMTP server as host:port"),
    (enabled(email={**EMAIL, "to": "ops"}), "monitoring.email.to", "must be an email address"),
    (enabled(email={key: value for key, value in EMAIL.items() if key != "password"}), "monitoring.email.password",
     "an SMTP login needs both user and password"),
])
def test_a_bad_setting_names_host_setting_value_and_rule(data, setting, rule):
    with pytest.raises(SettingsError) as caught:
        validate_hosts({"gw1": {**GOOD, "monitoring": data}}, SECRETS_ENV)
    found = caught.value.problems
    assert len(found) == 1 and found[0].startswith(f"host gw1: {setting} = "), found
    assert rule in found[0], found


@pytest.mark.parametrize("field", ["webhook", "email"])
def test_a_literal_secret_is_refused_and_never_echoed(field):
    literal = "literal-sentinel-secret-1234567890"
    receiver = ({"url": "https://hooks.example.com/", "bearer_token": literal} if field == "webhook"
                else {**EMAIL, "password": literal})
    with pytest.raises(SettingsError) as caught:
        validate_hosts({"gw1": {**GOOD, "monitoring": {"enabled": True, field: receiver}}}, SECRETS_ENV)
    found = caught.value.problems
    secret = "bearer_token" if field == "webhook" else "password"
    assert len(found) == 1 and found[0].startswith(f"host gw1: monitoring.{field}.{secret} = <literal value hidden"), found
    assert "must be a ${VAR} reference" in found[0] and literal not in found[0]


# --- rendering -----------------------------------------------------------------------------------------


def test_every_daemon_listens_on_loopback_only_with_the_settings_retention():
    lines = commands(settings(enabled(retention_days=30)))
    assert lines["prometheus"] == ("/usr/bin/prometheus --config.file=/etc/prometheus/prometheus.yml "
                                   "--web.listen-address=127.0.0.1:9090 --storage.tsdb.retention.time=30d")
    assert lines["prometheus-alertmanager"] == (
        "/usr/bin/prometheus-alertmanager --config.file=/etc/prometheus/alertmanager.yml "
        "--web.listen-address=127.0.0.1:9093 --cluster.listen-address=")
    assert lines["prometheus-blackbox-exporter"] == ("/usr/bin/prometheus-blackbox-exporter --config.file="
                                                     "/etc/prometheus/blackbox.yml --web.listen-address=127.0.0.1:9115")
    assert lines["prometheus-node-exporter"] == (
        "/usr/bin/prometheus-node-exporter --web.listen-address=127.0.0.1:9100 "
        "--collector.textfile.directory=/var/lib/prometheus/node-exporter --collector.systemd "
        "--collector.systemd.unit-include=(openclaw-gateway|nginx|fail2ban|nftables|ssh|cron|prometheus|"
        "prometheus-alertmanager|prometheus-node-exporter|prometheus-blackbox-exporter)[.]service")
    dropin = render("monitoring", "service-dropin.conf.j2", service="prometheus", command=lines["prometheus"])
    assert dropin.splitlines()[-3:] == ["EnvironmentFile=", "ExecStart=", f"ExecStart={lines['prometheus']}"]


def test_the_alertmanager_config_names_the_secret_files_only():
    rendered = config_files(settings(ALL_RECEIVERS))["prometheus-alertmanager"]["alertmanager.yml"]
    assert yaml.safe_load(rendered) == {
        "route": {"receiver": "openclaw-kit", "group_by": ["alertname", "job"], "group_wait": "30s",
                  "group_interval": "5m", "repeat_interval": "4h"},
        "receivers": [{
            "name": "openclaw-kit",
            "webhook_configs": [{"url": "https://hooks.example.com/kit", "send_resolved": True, "http_config": {
                "authorization": {"type": "Bearer",
                                  "credentials_file": "/etc/prometheus/openclaw-kit-secrets/webhook-bearer-token"}}}],
            "email_configs": [{"to": "ops@example.com", "from": "alerts@example.com", "smarthost": "smtp.example.com:587",
                               "require_tls": True, "send_resolved": True, "auth_username": "alerts",
                               "auth_password_file": "/etc/prometheus/openclaw-kit-secrets/smtp-password"}],
        }],
    }
    webhook_only = config_files(settings(enabled()))["prometheus-alertmanager"]["alertmanager.yml"]
    assert yaml.safe_load(webhook_only)["receivers"] == [
        {"name": "openclaw-kit", "webhook_configs": [{"url": WEBHOOK["url"], "send_resolved": True}]}]


def test_no_rendered_file_holds_a_secret():
    rendered = json.dumps(config_files(settings(ALL_RECEIVERS)))
    assert HOOK_TOKEN not in rendered and SMTP_PASSWORD not in rendered and "sentinel" not in rendered


def test_prometheus_scrapes_every_exporter_and_probes_the_gateway_and_the_certificate():
    config = yaml.safe_load(config_files(settings(enabled(), gateway_port=18800))["prometheus"]["prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {name: job["static_configs"][0]["targets"] for name, job in jobs.items()}
    assert targets == {
        "prometheus": ["127.0.0.1:9090"], "alertmanager": ["127.0.0.1:9093"], "node": ["127.0.0.1:9100"],
        "blackbox": ["127.0.0.1:9115"], "gateway_healthz": ["http://127.0.0.1:18800/healthz"],
        "gateway_readyz": ["http://127.0.0.1:18800/readyz"], "certificate": ["127.0.0.1:443"],
    }
    assert jobs["node"]["honor_labels"] is True, "the job metrics' own job label must survive the scrape"
    assert jobs["certificate"]["params"] == {"module": ["tls_certificate"]}
    assert config["rule_files"] == [RULES_FILE] and config["global"]["external_labels"] == {"host": "gw.example.com"}
    blackbox = yaml.safe_load(config_files(settings(enabled()))["prometheus-blackbox-exporter"]["blackbox.yml"])
    assert blackbox["modules"]["tls_certificate"]["tcp"]["tls_config"]["server_name"] == "gw.example.com"


def test_the_job_list_is_role_logs_schedule_and_the_units_are_the_kits():
    from openclaw_kit.layout import GATEWAY_SERVICE as SERVICE
    from roles.logs import cron_jobs

    assert {command.split()[1] for _, command in cron_jobs()} == set(SCHEDULED_JOBS)
    assert f"{SERVICE}.service" in KIT_UNITS


# --- Debian's own checkers on the rendered files -------------------------------------------------------


def written(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        (tmp_path / relative).write_text(content)
    return tmp_path


@needs_promtool
@needs_amtool
def test_promtool_and_amtool_accept_the_rendered_configs(tmp_path):
    for service, files in config_files(settings(ALL_RECEIVERS)).items():
        if service == "prometheus-blackbox-exporter":
            continue  # its checker is the exporter itself, on the host
        directory = tmp_path / service
        directory.mkdir()
        run = subprocess.run(["sh", "-c", check_command(service, str(written(directory, files)))], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


BROKEN_RULE = "      - alert: Broken\n        expr: up ==\n"


@needs_promtool
@needs_amtool
@pytest.mark.parametrize("service", ["prometheus", "prometheus-alertmanager"])
def test_a_rejected_config_fails_and_the_live_files_stay(tmp_path, service):
    files = config_files(settings(enabled()))[service]
    live, candidate = tmp_path / "etc", tmp_path / "candidate"
    live.mkdir()
    candidate.mkdir()
    written(live, files)
    broken = dict(files)
    if service == "prometheus":
        broken[RULES_FILE] = files[RULES_FILE] + BROKEN_RULE
    else:
        broken["alertmanager.yml"] = files["alertmanager.yml"].replace("receiver: openclaw-kit", "receiver: nobody")
    written(candidate, broken)
    steps = check_then_promote_commands(check_command(service, str(candidate)), REJECTED.format(service, service),
                                        promote_files_command(list(files), str(live), str(candidate)))
    for step in steps:
        run = subprocess.run(["sh", "-c", step], capture_output=True, text=True)
        if run.returncode:
            break
    assert run.returncode == 1 and run.stderr.endswith(REJECTED.format(service, service) + "\n"), run.stdout + run.stderr
    assert {path.name: path.read_text() for path in live.iterdir()} == files, "a rejected file went live"


# --- every alert under promtool test rules ---------------------------------------------------------------

FS = 'fstype="ext4",mountpoint="/",device="/dev/sda1",instance="127.0.0.1:9100",job="node"'

# (alert, input series, eval time, expected alerts' labels) per case: each alert fires when it should and
# stays silent when it should not. Intervals of one minute, except where hours are the point.
CASES = {
    "gateway down fires after 2m": ("OpenclawGatewayDown", {'probe_success{job="gateway_healthz",instance="g"}': "0x10"},
                                    "3m", [{"severity": "critical", "job": "gateway_healthz", "instance": "g"}]),
    "gateway down is pending before 2m": ("OpenclawGatewayDown", {'probe_success{job="gateway_healthz",instance="g"}': "0x10"}, "1m", []),
    "gateway up is silent": ("OpenclawGatewayDown", {'probe_success{job="gateway_healthz",instance="g"}': "1x10"}, "5m", []),
    "gateway not ready fires after 10m": ("OpenclawGatewayNotReady", {'probe_success{job="gateway_readyz",instance="r"}': "0x20"},
                                          "11m", [{"severity": "warning", "job": "gateway_readyz", "instance": "r"}]),
    "gateway ready is silent": ("OpenclawGatewayNotReady", {'probe_success{job="gateway_readyz",instance="r"}': "1x20"}, "11m", []),
    "a target down fires": ("ScrapeTargetDown", {'up{job="node",instance="127.0.0.1:9100"}': "0x10"}, "6m",
                            [{"severity": "warning", "job": "node", "instance": "127.0.0.1:9100"}]),
    "targets up are silent": ("ScrapeTargetDown", {'up{job="node",instance="127.0.0.1:9100"}': "1x10"}, "6m", []),
    "a failed certificate probe fires": ("CertificateProbeFailed", {'probe_success{job="certificate",instance="c"}': "0x40"}, "31m",
                                         [{"severity": "warning", "job": "certificate", "instance": "c"}]),
    "a certificate probe that succeeds is silent": ("CertificateProbeFailed", {'probe_success{job="certificate",instance="c"}': "1x40"},
                                                    "31m", []),
    "a certificate expiring in 13 days fires": ("CertificateExpiresSoon",
                                                {'probe_ssl_earliest_cert_expiry{job="certificate",instance="c"}': f"{13 * 86400}x20"},
                                                "11m", [{"severity": "warning", "job": "certificate", "instance": "c"}]),
    "a certificate valid for 30 days is silent": ("CertificateExpiresSoon",
                                                  {'probe_ssl_earliest_cert_expiry{job="certificate",instance="c"}': f"{30 * 86400}x20"},
                                                  "11m", []),
    "a backup last successful 27h ago fires": ("ScheduledJobNotSuccessful", {
        'openclaw_kit_job_last_success_timestamp_seconds{job="backup",instance="127.0.0.1:9100"}': "0x30"}, "27h",
        [{"severity": "warning", "job": "backup", "instance": "127.0.0.1:9100"}], "1h"),
    "a backup that succeeds daily is silent": ("ScheduledJobNotSuccessful", {
        'openclaw_kit_job_last_success_timestamp_seconds{job="backup",instance="127.0.0.1:9100"}': "0+3600x30"}, "27h", [], "1h"),
    "log rotation late by 4h fires": ("ScheduledJobNotSuccessful", {
        'openclaw_kit_job_last_success_timestamp_seconds{job="logrotate",instance="127.0.0.1:9100"}': "0x5"}, "4h",
        [{"severity": "warning", "job": "logrotate", "instance": "127.0.0.1:9100"}], "1h"),
    "a job with no outcome for 27h fires": ("ScheduledJobNoOutcome", {
        'openclaw_kit_job_last_success_timestamp_seconds{job="logrotate",instance="127.0.0.1:9100"}': "0+3600x30",
        'openclaw_kit_job_last_success_timestamp_seconds{job="security-audit",instance="127.0.0.1:9100"}': "0+3600x30"},
        "27h", [{"severity": "warning", "job": "backup"}], "1h"),
    "a job with outcomes is silent": ("ScheduledJobNoOutcome", {
        f'openclaw_kit_job_last_success_timestamp_seconds{{job="{job}",instance="127.0.0.1:9100"}}': "0+3600x30"
        for job in SCHEDULED_JOBS}, "27h", [], "1h"),
    "a disk 90% full fires": ("DiskAlmostFull", {f"node_filesystem_avail_bytes{{{FS}}}": "10x30",
                                                 f"node_filesystem_size_bytes{{{FS}}}": "100x30"}, "16m",
                              [{"severity": "warning", "fstype": "ext4", "mountpoint": "/", "device": "/dev/sda1",
                                "instance": "127.0.0.1:9100", "job": "node"}]),
    "a disk 50% full is silent": ("DiskAlmostFull", {f"node_filesystem_avail_bytes{{{FS}}}": "50x30",
                                                     f"node_filesystem_size_bytes{{{FS}}}": "100x30"}, "16m", []),
    "a full tmpfs is silent": ("DiskAlmostFull", {'node_filesystem_avail_bytes{fstype="tmpfs",mountpoint="/run"}': "0x30",
                                                  'node_filesystem_size_bytes{fstype="tmpfs",mountpoint="/run"}': "100x30"}, "16m", []),
    "5% inodes free fires": ("InodesLow", {f"node_filesystem_files_free{{{FS}}}": "5x30", f"node_filesystem_files{{{FS}}}": "100x30"},
                             "16m", [{"severity": "warning", "fstype": "ext4", "mountpoint": "/", "device": "/dev/sda1",
                                      "instance": "127.0.0.1:9100", "job": "node"}]),
    "50% inodes free is silent": ("InodesLow", {f"node_filesystem_files_free{{{FS}}}": "50x30",
                                                f"node_filesystem_files{{{FS}}}": "100x30"}, "16m", []),
    "a filesystem without inodes is silent": ("InodesLow", {f"node_filesystem_files_free{{{FS}}}": "0x30",
                                                            f"node_filesystem_files{{{FS}}}": "0x30"}, "16m", []),
}


def expected_summary(rules: dict, alert: str, labels: dict) -> str:
    summaries = {rule["alert"]: rule["annotations"]["summary"] for group in rules["groups"] for rule in group["rules"]
                 if rule["alert"] == alert and rule["labels"].get("job", labels.get("job")) == labels.get("job")}
    return summaries[alert].replace("{{ $labels.mountpoint }}", labels.get("mountpoint", "")).replace(
        "{{ $labels.job }}", labels.get("job", "")).replace("{{ $labels.instance }}", labels.get("instance", ""))


@needs_promtool
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_alert_fires_when_it_should_and_is_silent_otherwise(tmp_path, case):
    alert, series, eval_time, expected, *interval = CASES[case]
    rules_text = config_files(settings(enabled()))["prometheus"][RULES_FILE]
    (tmp_path / RULES_FILE).write_text(rules_text)
    rules = yaml.safe_load(rules_text)
    test = {
        "rule_files": [RULES_FILE],
        "evaluation_interval": interval[0] if interval else "1m",
        "tests": [{
            "interval": interval[0] if interval else "1m",
            "input_series": [{"series": name, "values": values} for name, values in series.items()],
            "alert_rule_test": [{"eval_time": eval_time, "alertname": alert, "exp_alerts": [
                {"exp_labels": labels, "exp_annotations": {"summary": expected_summary(rules, alert, labels)}}
                for labels in expected]}],
        }],
    }
    (tmp_path / "test.yml").write_text(json.dumps(test))
    run = subprocess.run([PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
def test_thresholds_come_from_the_settings(tmp_path):
    rules = config_files(settings(enabled(alerts={"disk_used_percent": 95, "gateway_down_for": "30s"})))["prometheus"][RULES_FILE]
    assert "> 95\n" in rules and "for: 30s" in rules and "> 85\n" not in rules


def test_every_alert_has_a_case_that_fires_and_one_that_is_silent():
    rules = yaml.safe_load(config_files(settings(enabled()))["prometheus"][RULES_FILE])
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    fires = {case[0] for case in CASES.values() if case[3]}
    silent = {case[0] for case in CASES.values() if not case[3]}
    assert alerts == fires == silent


# --- the job runner's metrics (role logs' runner, with monitoring's textfile directory) --------------------


@pytest.fixture
def runner(tmp_path):
    (tmp_path / "textfile").mkdir()
    script = tmp_path / "openclaw-kit-job"
    script.write_text(render("logs", "openclaw-kit-job.j2", audit_log=tmp_path / "audit.log", env_file=tmp_path / "none",
                             timeout=5, textfile_dir=tmp_path / "textfile", metrics_prefix=JOB_METRICS_PREFIX))
    return script, tmp_path / "textfile"


def job_metrics(textfile: Path, job: str) -> dict[str, float]:
    lines = (textfile / f"{JOB_METRICS_PREFIX}{job}.prom").read_text().splitlines()
    return {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in lines if not line.startswith("#")}


def test_the_runner_writes_last_success_and_exit_code_and_keeps_the_success_on_failure(runner):
    import time

    script, textfile = runner
    before = time.time()
    assert subprocess.run([sys.executable, str(script), "backup", "--", "true"]).returncode == 0
    succeeded = job_metrics(textfile, "backup")
    assert succeeded["openclaw_kit_job_last_exit_code"] == 0
    assert before - 1 <= succeeded["openclaw_kit_job_last_success_timestamp_seconds"] <= time.time() + 1
    assert subprocess.run([sys.executable, str(script), "backup", "--", "sh", "-c", "exit 4"]).returncode == 4
    failed = job_metrics(textfile, "backup")
    assert failed == {"openclaw_kit_job_last_exit_code": 4,
                      "openclaw_kit_job_last_success_timestamp_seconds": succeeded["openclaw_kit_job_last_success_timestamp_seconds"]}
    # A job that never succeeded: an old success, so the staleness alert fires.
    assert subprocess.run([sys.executable, str(script), "security-audit", "--", "false"]).returncode == 1
    assert job_metrics(textfile, "security-audit")["openclaw_kit_job_last_success_timestamp_seconds"] == 0
    assert sorted(os.listdir(textfile)) == [f"{JOB_METRICS_PREFIX}backup.prom", f"{JOB_METRICS_PREFIX}security-audit.prom"]
    assert (textfile / f"{JOB_METRICS_PREFIX}backup.prom").stat().st_mode & 0o777 == 0o644


@needs_promtool
def test_the_runners_metrics_pass_promtool(runner):
    script, textfile = runner
    subprocess.run([sys.executable, str(script), "logrotate", "--", "true"], check=True)
    content = (textfile / f"{JOB_METRICS_PREFIX}logrotate.prom").read_text()
    run = subprocess.run([PROMTOOL, "check", "metrics"], input=content, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'openclaw_kit_job_last_exit_code{job="logrotate"} 0\n' in content


# --- the role in a whole deploy, against pyinfra's fake connector -------------------------------------------


def fake_deploy(tmp_path, **settings_data) -> tuple[list[str], str]:
    (tmp_path / "inventory.py").write_text(fake_inventory(**settings_data))
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "--json", str(tmp_path / "inventory.py"), "deploy.py"],
                         cwd=REPO, env={**os.environ, **SECRETS_ENV}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    result = json.loads(run.stdout[run.stdout.index("{"):])
    return [op["name"] for op in result["results"]["operations"]], run.stdout + run.stderr


def test_disabled_monitoring_adds_no_operation(tmp_path):
    names, _ = fake_deploy(tmp_path)
    assert not [name for name in names if name.startswith("monitoring |")]


def test_enabled_monitoring_checks_every_config_and_never_prints_a_secret(tmp_path):
    names, output = fake_deploy(tmp_path, monitoring=ALL_RECEIVERS)
    ours = [name for name in names if name.startswith("monitoring |")]
    for service in ("prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter"):
        assert f"monitoring | {service} config in /etc/prometheus: checked on the host, then made live" in ours
    assert "monitoring | Secret file /etc/prometheus/openclaw-kit-secrets/webhook-bearer-token" in ours
    # The drop-ins come before the packages, so the daemons' first start is on loopback already.
    first_dropin = ours.index("monitoring | prometheus on loopback /etc/systemd/system/prometheus.service.d/openclaw-kit.conf")
    install = next(i for i, name in enumerate(ours) if name.startswith("monitoring | Install "))
    assert first_dropin < install
    assert HOOK_TOKEN not in output and SMTP_PASSWORD not in output and "sentinel" not in output
    assert monitoring.PACKAGES == ["prometheus-node-exporter", "prometheus", "prometheus-alertmanager",
                                   "prometheus-blackbox-exporter"]
