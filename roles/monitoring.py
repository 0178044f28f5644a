"""Role monitoring: Prometheus, Alertmanager and the node and blackbox exporters, on the host itself.

Opt-in (`monitoring: {enabled: true, ...}`); without it the role does nothing. Debian's packages,
without Recommends. Every daemon listens on loopback only (their UIs are reached through an SSH
tunnel); each gets a systemd drop-in with the kit's flags, written before the package is installed so
that even its first start is on loopback. Prometheus' config and alert rules, Alertmanager's config and
the blackbox exporter's modules are checked on the host (promtool, amtool, --config.check) before they
replace the live ones; a rejected file fails the deploy and the daemon keeps its config. Secrets
(the webhook's bearer token, the SMTP password) live in 0600 files of the prometheus user that
Alertmanager reads; the rendered config only names those files.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from openclaw_kit.layout import KIT_STATE_DIR, TEXTFILE_DIR
from openclaw_kit.operations import checked_config, restart_command
from openclaw_kit.packages import install_missing
from openclaw_kit.secrets import private_file
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render, template

PACKAGES = ["prometheus-node-exporter", "prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter"]
USER = "prometheus"  # Debian's packages run every daemon as this user
ETC = "/etc/prometheus"
SECRETS_DIR = f"{ETC}/openclaw-kit-secrets"
BEARER_FILE = f"{SECRETS_DIR}/webhook-bearer-token"
SMTP_PASSWORD_FILE = f"{SECRETS_DIR}/smtp-password"
CANDIDATES = f"{KIT_STATE_DIR}/monitoring-candidate"
RULES_FILE = "openclaw-kit-rules.yml"
PROMETHEUS = "127.0.0.1:9090"
ALERTMANAGER = "127.0.0.1:9093"
NODE_EXPORTER = "127.0.0.1:9100"
BLACKBOX = "127.0.0.1:9115"
# Every port the daemons listen on (Alertmanager's gossip port 9094 is turned off); loopback only.
PORTS = (9090, 9093, 9094, 9100, 9115)
PSEUDO_FILESYSTEMS = "tmpfs|ramfs"
# Job name -> how often role logs' cron runs it through the job runner: "hourly" or "daily".
SCHEDULED_JOBS = {"logrotate": "hourly", "security-audit": "daily", "backup": "daily"}
# The kit's systemd units that the node exporter's systemd collector reports (and no others).
KIT_UNITS = ("openclaw-gateway.service", "nginx.service", "fail2ban.service", "nftables.service", "ssh.service",
             "cron.service", "prometheus.service", "prometheus-alertmanager.service",
             "prometheus-node-exporter.service", "prometheus-blackbox-exporter.service")
REJECTED = "{} rejected the new configuration (its message is above); the running {} keeps the old one"


def unit_dropin(service: str) -> str:
    return f"/etc/systemd/system/{service}.service.d/openclaw-kit.conf"


def commands(settings: HostSettings) -> dict[str, str]:
    """Each daemon's command line (its systemd ExecStart), loopback only."""
    units = "|".join(unit.removesuffix(".service") for unit in KIT_UNITS)
    return {
        "prometheus": f"/usr/bin/prometheus --config.file={ETC}/prometheus.yml --web.listen-address={PROMETHEUS} "
                      f"--storage.tsdb.retention.time={settings.monitoring.retention_days}d",
        # --cluster.listen-address= : no gossip port (9094 on every address by default).
        "prometheus-alertmanager": f"/usr/bin/prometheus-alertmanager --config.file={ETC}/alertmanager.yml "
                                   f"--web.listen-address={ALERTMANAGER} --cluster.listen-address=",
        # The systemd collector reports the kit's units only; `[.]`, since systemd reads backslashes itself.
        "prometheus-node-exporter": f"/usr/bin/prometheus-node-exporter --web.listen-address={NODE_EXPORTER} "
                                    f"--collector.textfile.directory={TEXTFILE_DIR} --collector.systemd "
                                    f"--collector.systemd.unit-include=({units})[.]service",
        "prometheus-blackbox-exporter": f"/usr/bin/prometheus-blackbox-exporter --config.file={ETC}/blackbox.yml "
                                        f"--web.listen-address={BLACKBOX}",
    }


def job_max_ages(settings: HostSettings) -> list[tuple[str, int]]:
    """(job, hours) within which each scheduled job must have succeeded once."""
    alerts = settings.monitoring.alerts
    hours = {"hourly": alerts.hourly_job_max_age_hours, "daily": alerts.daily_job_max_age_hours}
    return [(job, hours[period]) for job, period in SCHEDULED_JOBS.items()]


def config_files(settings: HostSettings) -> dict[str, dict[str, str]]:
    """Each daemon's files, by path relative to /etc/prometheus."""
    monitoring = settings.monitoring
    port = settings.gateway_port
    prometheus = render(
        "monitoring", "prometheus.yml.j2", scrape_interval=monitoring.scrape_interval, host_label=settings.domain,
        alertmanager=ALERTMANAGER, rules_file=RULES_FILE, blackbox=BLACKBOX,
        exporters=[("prometheus", PROMETHEUS), ("alertmanager", ALERTMANAGER), ("node", NODE_EXPORTER),
                   ("blackbox", BLACKBOX)],
        probes=[("gateway_healthz", "http_2xx", f"http://127.0.0.1:{port}/healthz"),
                ("gateway_readyz", "http_2xx", f"http://127.0.0.1:{port}/readyz"),
                ("certificate", "tls_certificate", "127.0.0.1:443")],
    )
    rules = render("monitoring", "rules.yml.j2", alerts=monitoring.alerts, domain=settings.domain,
                   jobs=job_max_ages(settings), pseudo_filesystems=PSEUDO_FILESYSTEMS)
    alertmanager = render("monitoring", "alertmanager.yml.j2", monitoring=monitoring, secrets_dir=SECRETS_DIR,
                          bearer_file=BEARER_FILE, smtp_password_file=SMTP_PASSWORD_FILE)
    blackbox = render("monitoring", "blackbox.yml.j2", domain=settings.domain)
    return {
        "prometheus": {"prometheus.yml": prometheus, RULES_FILE: rules},
        "prometheus-alertmanager": {"alertmanager.yml": alertmanager},
        "prometheus-blackbox-exporter": {"blackbox.yml": blackbox},
    }


def check_command(service: str, candidate_dir: str) -> str:
    """The host's own checker of `service`'s candidate files."""
    q = shlex.quote
    return {
        "prometheus": f"promtool check rules {q(f'{candidate_dir}/{RULES_FILE}')} && "
                      f"promtool check config {q(f'{candidate_dir}/prometheus.yml')}",
        "prometheus-alertmanager": f"amtool check-config {q(f'{candidate_dir}/alertmanager.yml')}",
        "prometheus-blackbox-exporter": "prometheus-blackbox-exporter --config.check "
                                        f"--config.file={q(f'{candidate_dir}/blackbox.yml')}",
    }[service]


@deploy("monitoring")
def monitoring(settings: HostSettings):
    if not settings.monitoring.enabled:
        return

    # Loopback from the first start on: the drop-ins exist before the packages start their daemons.
    dropins = {
        service: template(name=f"{service} on loopback {unit_dropin(service)}", role="monitoring",
                          src="service-dropin.conf.j2", dest=unit_dropin(service), service=service, command=command)
        for service, command in commands(settings).items()
    }
    systemd.daemon_reload(name="Reload systemd for the monitoring drop-ins", _if=any_changed(*dropins.values()))
    install_missing(PACKAGES)

    # The kit's job runner (role logs) writes its metrics here once it exists.
    files.directory(name=f"Textfile collector directory {TEXTFILE_DIR}", path=TEXTFILE_DIR, user=USER,
                    group=USER, mode="755")
    secret_files(settings)

    promoted = {
        service: checked_config(
            name=f"{service} config in {ETC}: checked on the host, then made live",
            files=content,
            live_dir=ETC,
            candidate_dir=f"{CANDIDATES}/{service}",
            check=check_command(service, f"{CANDIDATES}/{service}"),
            rejected=REJECTED.format(service, service),
        )
        for service, content in config_files(settings).items()
    }
    for service, dropin in dropins.items():
        config = promoted.get(service)
        restarted = server.shell(name=f"Restart {service} for its new flags", commands=[restart_command(service)],
                                 _if=dropin.did_change)
        if config is not None:
            # A restart reads the new config too; otherwise a reload (SIGHUP) is enough.
            server.shell(
                name=f"Reload {service} for its new config", commands=[f"systemctl reload {service}"],
                _if=lambda config=config, restarted=restarted: config.did_change() and not restarted.did_change(),
            )
        systemd.service(name=f"{service} enabled and running", service=f"{service}.service", running=True,
                        enabled=True)


def secret_files(settings: HostSettings) -> None:
    """The receivers' secrets, each in a 0600 file of the prometheus user; a secret no longer set is removed."""
    monitoring = settings.monitoring
    files.directory(name=f"Monitoring secrets directory {SECRETS_DIR}", path=SECRETS_DIR, user=USER, group=USER,
                    mode="700")
    wanted = {
        BEARER_FILE: monitoring.webhook.bearer_token if monitoring.webhook else None,
        SMTP_PASSWORD_FILE: monitoring.email.password if monitoring.email else None,
    }
    for path, secret in wanted.items():
        if secret is None:
            files.file(name=f"No secret file {path}", path=path, present=False)
        else:
            private_file(name=f"Secret file {path}", path=path, content=secret, user=USER, group=USER,
                         private_dir=f"/tmp/openclaw-kit-{host.data.get('ssh_user') or 'root'}")
