"""Role logs: the kit's rotation, its audit log with recent results of every scheduled job, backups, the journal."""

import hashlib
import json

import pytest

from openclaw_kit.templates import render
from roles.logs import (
    AUDIT_DIR,
    AUDIT_LOG,
    BACKUP_STORE,
    CRON_FILE,
    CRON_PATHS,
    JOURNAL_LIMITS,
    JOURNALD_DROPIN,
    LOGROTATE_CONF,
    LOGROTATE_STATE,
    NGINX_LOGROTATE,
    NGINX_LOGROTATE_DIVERTED,
    cron_jobs,
    logrotate_data,
)
from roles.openclaw.systemd import USER

# How old the newest outcome of each job may be: the hourly rotation, the daily checks (plus slack).
MAX_AGE_HOURS = {"logrotate": 2, "security-audit": 26, "backup": 26}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_cron_runs_the_kits_jobs(target):
    assert target.host.service("cron").is_running, "cron is not running: no scheduled job will run"
    cron = target.host.file(CRON_FILE)
    assert cron.exists, f"{CRON_FILE} is missing: rotation and the daily checks are not scheduled"
    assert (cron.user, cron.group, cron.mode) == ("root", "root", 0o644), "cron ignores files that are not root's 0644"
    expected = render("logs", "cron.j2", jobs=cron_jobs(), audit_log=AUDIT_LOG)
    assert sha256(cron.content_string) == sha256(expected), f"{CRON_FILE} differs from the kit's"


def test_logrotate_config_is_the_kits_and_logrotate_accepts_it(target):
    config = target.host.file(LOGROTATE_CONF)
    assert config.exists and (config.user, config.mode) == ("root", 0o644), LOGROTATE_CONF
    expected = render("logs", "logrotate.conf.j2", **logrotate_data(target.settings))
    assert sha256(config.content_string) == sha256(expected), f"{LOGROTATE_CONF} differs from the kit's (edited, or other settings)"
    check = target.host.run(f"logrotate -d --state {LOGROTATE_STATE} {LOGROTATE_CONF}")
    assert check.rc == 0 and "error:" not in check.stderr, check.stderr[-2000:]


def test_distro_rotation_of_nginx_is_diverted(target):
    # Two rotations of the same files would rotate them twice and fight over retention.
    assert target.host.check_output(f"dpkg-divert --truename {NGINX_LOGROTATE}") == NGINX_LOGROTATE_DIVERTED
    assert not target.host.file(NGINX_LOGROTATE).exists


def test_audit_log_is_root_s_and_read_only_once_rotated(target):
    directory = target.host.file(AUDIT_DIR)
    assert (directory.user, directory.group, directory.mode) == ("root", "adm", 0o750), AUDIT_DIR
    log = target.host.file(AUDIT_LOG)
    assert (log.user, log.group, log.mode) == ("root", "adm", 0o640), AUDIT_LOG
    writable = target.host.run(f"find {AUDIT_DIR} -mindepth 1 -name 'audit.log-*' -perm /0222")
    assert writable.stdout.strip() == "", f"rotated audit files still writable: {writable.stdout.split()}"
    # The gateway's user can neither write the audit log nor add files beside it.
    assert target.host.run(f"setpriv --reuid={USER} --regid={USER} --init-groups test -w {AUDIT_LOG}").rc != 0
    assert target.host.run(f"setpriv --reuid={USER} --regid={USER} --init-groups test -w {AUDIT_DIR}").rc != 0


def latest_outcomes(target) -> dict[str, dict]:
    lines = target.host.check_output(f"cat {AUDIT_LOG} $(ls -1 {AUDIT_DIR}/audit.log-* 2>/dev/null | grep -v '.gz$' | sort | tail -n 2) "
                                     "2>/dev/null || true").splitlines()
    latest = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("job") and entry.get("end", "") >= latest.get(entry["job"], {}).get("end", ""):
            latest[entry["job"]] = entry
    return latest


@pytest.mark.parametrize("job", list(MAX_AGE_HOURS))
def test_each_job_has_a_recent_successful_outcome_in_the_audit_log(target, job):
    entry = latest_outcomes(target).get(job)
    assert entry is not None, f"no outcome of the {job} job in {AUDIT_LOG}: it has not run"
    # Ages by the host's own clock: the controller's may differ.
    age = int(target.host.check_output("date +%s")) - int(target.host.check_output(f"date -d {entry['end']} +%s"))
    assert age <= MAX_AGE_HOURS[job] * 3600, f"the newest {job} outcome is {age // 3600} h old (ended {entry['end']})"
    assert entry["exit"] == 0, f"{job} failed (exit {entry['exit']}): {entry.get('error', '')[-500:]}"
    if job == "security-audit":
        summary = entry["result"]["summary"]
        assert summary["critical"] == 0 and summary["warn"] == 0, entry["result"]["findings"]
    if job == "backup":
        assert entry["result"]["verified"] is True


def test_backups_are_root_s_and_recent(target):
    store = target.host.file(BACKUP_STORE)
    assert (store.user, store.group, store.mode) == ("root", "root", 0o700), BACKUP_STORE
    newest = target.host.check_output(f"ls -1t {BACKUP_STORE}/*-openclaw-backup.tar.gz 2>/dev/null | head -n 1 || true")
    assert newest, f"no backup archive in {BACKUP_STORE}"
    archive = target.host.file(newest)
    assert (archive.user, archive.mode) == ("root", 0o400), newest
    assert target.host.check_output(f"find {newest} -mmin -{26 * 60}"), f"the newest backup is older than 26 h: {newest}"


def test_journal_is_persistent_with_limits(target):
    dropin = target.host.file(JOURNALD_DROPIN)
    expected = render("logs", "journald.conf.j2", retention_days=target.settings.log_retention_days, **JOURNAL_LIMITS)
    assert dropin.exists and sha256(dropin.content_string) == sha256(expected), f"{JOURNALD_DROPIN} differs from the kit's"
    assert target.host.run("ls /var/log/journal/*/system.journal").rc == 0, "journald does not write to /var/log/journal"


def test_cron_is_root_only(target):
    if not target.settings.cron_root_only:
        pytest.skip("cron_root_only: false in settings")
    for path, mode in CRON_PATHS.items():
        found = target.host.file(path)
        if found.exists:
            assert (found.user, found.group, found.mode) == ("root", "root", int(mode, 8)), path
