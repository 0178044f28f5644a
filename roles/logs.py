"""Role logs: rotation and retention, the audit log, scheduled checks, a persistent journal.

The kit rotates its own logs (the gateway's, nginx's, its audit log) with its own logrotate
config and state file, run hourly from its own cron file; the distro's logrotate.timer keeps the
distro's logs. Daily jobs (OpenClaw's security audit, a verified backup of the gateway's state)
run through one runner that records every job's outcome as a JSON line in the audit log and in
the journal.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.operations import files, server, systemd

from openclaw_kit.layout import (
    AUDIT_DIR,
    AUDIT_LOG,
    BACKUP_STORE,
    GATEWAY_CLI,
    GATEWAY_ENV_FILE,
    GATEWAY_LOG_FILE,
    GATEWAY_USER,
    JOB_METRICS_PREFIX,
    KIT_CONFIG_DIR,
    KIT_LOG_DIR,
    KIT_STATE_DIR,
    NGINX_LOG_DIR,
    NGINX_PID,
    TEXTFILE_DIR,
)
from openclaw_kit.layout import JOB_RUNNER as JOB
from openclaw_kit.operations import restart_command
from openclaw_kit.packages import install_missing
from openclaw_kit.platform import platform_of
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import template

COMPRESS_AUDIT_AFTER_DAYS = 90
LOGROTATE_CONF = f"{KIT_CONFIG_DIR}/logrotate.conf"
LOGROTATE_STATE = f"{KIT_STATE_DIR}/logrotate.state"
CRON_FILE = "/etc/cron.d/openclaw-kit-logs"
BACKUP = "/usr/local/sbin/openclaw-kit-backup"
BACKUP_STAGING = "/var/backups/openclaw-staging"  # the service user writes a new archive here
JOB_TIMEOUT = 3600
NGINX_LOGS = f"{NGINX_LOG_DIR}/*.log"
# Debian's own rotation of the same nginx files, moved aside with dpkg-divert so the package's
# updates land beside it (logrotate skips *.disabled) instead of bringing it back.
NGINX_LOGROTATE = "/etc/logrotate.d/nginx"
NGINX_LOGROTATE_DIVERTED = f"{NGINX_LOGROTATE}.disabled"
JOURNALD_DROPIN = "/etc/systemd/journald.conf.d/openclaw-kit.conf"
JOURNALD = "systemd-journald.service"
JOURNAL_LIMITS = {"max_use": "1G", "keep_free": "2G", "max_file_size": "64M"}
# CIS: what cron runs, and when, is root's business only.
CRON_PATHS = {"/etc/crontab": "600", "/etc/cron.d": "700", "/etc/cron.hourly": "700", "/etc/cron.daily": "700",
              "/etc/cron.weekly": "700", "/etc/cron.monthly": "700"}


@deploy("logs")
def logs(settings: HostSettings):
    platform = platform_of(host)
    install_missing(["cron", "logrotate"])
    root_only_cron(settings)
    systemd.service(name="cron enabled and running", service="cron.service", running=True, enabled=True)

    # The audit log: root's, readable by adm; the gateway's user cannot write to it at all.
    files.directory(
        name=f"Kit log directory {KIT_LOG_DIR}", path=KIT_LOG_DIR, user="root", group=platform.log_group, mode="750"
    )
    files.directory(
        name=f"Audit directory {AUDIT_DIR}", path=AUDIT_DIR, user="root", group=platform.log_group, mode="750"
    )
    files.file(name=f"Audit log {AUDIT_LOG}", path=AUDIT_LOG, user="root", group=platform.log_group, mode="640")

    # Backups: written by the service user to staging, kept where only root can change them.
    files.directory(
        name=f"Backup store {BACKUP_STORE}", path=BACKUP_STORE, user="root", group=platform.root_group, mode="700"
    )
    files.directory(name=f"Backup staging {BACKUP_STAGING}", path=BACKUP_STAGING, user=GATEWAY_USER, group=GATEWAY_USER,
                    mode="700")

    template(name=f"Job runner {JOB}", role="logs", src="openclaw-kit-job.j2", dest=JOB, mode="755",
             audit_log=AUDIT_LOG, env_file=GATEWAY_ENV_FILE, timeout=JOB_TIMEOUT, textfile_dir=TEXTFILE_DIR,
             metrics_prefix=JOB_METRICS_PREFIX)
    template(
        name=f"Backup job {BACKUP}",
        role="logs",
        src="openclaw-kit-backup.j2",
        dest=BACKUP,
        mode="750",
        **backup_data(settings.backup_retention_days),
    )

    # Rotation: the kit's own config and state, nginx's distro rotation moved aside.
    files.directory(name=f"Kit config directory {KIT_CONFIG_DIR}", path=KIT_CONFIG_DIR, mode="755")
    files.directory(name=f"Kit state directory {KIT_STATE_DIR}", path=KIT_STATE_DIR, mode="700")
    template(
        name=f"logrotate config {LOGROTATE_CONF}",
        role="logs",
        src="logrotate.conf.j2",
        dest=LOGROTATE_CONF,
        **logrotate_data(settings),
    )
    if host.get_fact(DivertedTo, path=NGINX_LOGROTATE) != NGINX_LOGROTATE_DIVERTED:
        server.shell(
            name=f"Divert the distro's {NGINX_LOGROTATE} (the kit rotates nginx's logs)",
            commands=[f"dpkg-divert --local --rename --divert {NGINX_LOGROTATE_DIVERTED} --add {NGINX_LOGROTATE}"],
        )
    jobs = cron_jobs()
    cron_op = template(
        name=f"Cron jobs {CRON_FILE}", role="logs", src="cron.j2", dest=CRON_FILE, jobs=jobs, audit_log=AUDIT_LOG
    )
    # A new schedule runs once right away, so a fresh host has results to check from day one. A job
    # that fails does not fail the deploy: its outcome is in the audit log, where verify looks.
    server.shell(
        name="Run the scheduled jobs once (outcomes in the audit log)",
        commands=[f"{command} || true" for _, command in jobs],
        _if=cron_op.did_change,
    )

    journald_op = template(name=f"journald drop-in {JOURNALD_DROPIN}", role="logs", src="journald.conf.j2",
                           dest=JOURNALD_DROPIN, retention_days=settings.log_retention_days, **JOURNAL_LIMITS)
    server.shell(
        name="Restart journald for its new settings",
        commands=[restart_command(JOURNALD), f"systemctl is-active --quiet {JOURNALD}"],
        _if=journald_op.did_change,
    )


def root_only_cron(settings: HostSettings) -> None:
    """/etc/crontab and the cron directories root's alone (settings.cron_root_only), once cron is installed:
    an /etc/crontab made before would be taken for the admin's own and kept by dpkg."""
    if not settings.cron_root_only:
        return
    for path, mode in CRON_PATHS.items():
        if path.endswith("crontab"):
            files.file(name=f"cron: {path} root-only", path=path, user="root", group="root", mode=mode)
        else:
            files.directory(name=f"cron: {path} root-only", path=path, user="root", group="root", mode=mode)


def backup_data(retention_days: int) -> dict:
    return dict(cli=GATEWAY_CLI, staging=BACKUP_STAGING, store=BACKUP_STORE, retention_days=retention_days)


def logrotate_data(settings: HostSettings) -> dict:
    return dict(state=LOGROTATE_STATE, gateway_log=GATEWAY_LOG_FILE, service_user=GATEWAY_USER,
                nginx_logs=NGINX_LOGS, nginx_pid=NGINX_PID, audit_log=AUDIT_LOG, audit_dir=AUDIT_DIR,
                audit_name=AUDIT_LOG.rsplit("/", 1)[1],
                log_retention_days=settings.log_retention_days, audit_retention_days=settings.audit_retention_days,
                compress_after_days=COMPRESS_AUDIT_AFTER_DAYS)


def cron_jobs() -> list[tuple[str, str]]:
    """(schedule, command) of every job the kit schedules; each runs through the job runner."""
    return [
        # Hourly, so that maxsize can act between the daily rotations.
        ("17 * * * *", f"{JOB} logrotate -- /usr/sbin/logrotate --state {LOGROTATE_STATE} {LOGROTATE_CONF}"),
        ("7 3 * * *", f"{JOB} security-audit --result-json -- {GATEWAY_CLI} security audit --json"),
        ("37 3 * * *", f"{JOB} backup --result-json -- {BACKUP}"),
    ]


class DivertedTo(FactBase):
    """Where dpkg diverts a path to, or None when it is not diverted."""

    def command(self, path: str) -> str:
        return f"dpkg-divert --truename {shlex.quote(path)}; echo {shlex.quote(path)}"

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        return lines[0] if len(lines) == 2 and lines[0] != lines[1] else None
