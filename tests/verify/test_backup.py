"""Role backup: on hosts with offsite_backup, the repository password is root's alone and the newest
off-host snapshot of the gateway's state is younger than 26 hours."""

import json

import pytest

from roles.backup import CONFIG_DIR, CRON_FILE, PASSWORD_FILE, RESTIC, RESTORE, STATE_TAG

MAX_AGE_HOURS = 26


@pytest.fixture
def offsite(target):
    if target.settings.offsite_backup is None:
        pytest.skip("no offsite_backup in this host's settings")
    return target.settings.offsite_backup


def test_the_repository_password_is_root_s_alone(target, offsite):
    directory = target.host.file(CONFIG_DIR)
    assert (directory.user, directory.group, directory.mode) == ("root", "root", 0o700), CONFIG_DIR
    password = target.host.file(PASSWORD_FILE)
    assert password.exists, f"{PASSWORD_FILE} is missing: restic cannot open the repository"
    assert (password.user, password.group, password.mode) == ("root", "root", 0o600), PASSWORD_FILE


def test_the_off_host_copy_is_scheduled_and_the_restore_command_is_there(target, offsite):
    assert target.host.file(CRON_FILE).exists, f"{CRON_FILE} is missing: nothing is copied off the host"
    for path in (RESTIC, RESTORE):
        script = target.host.file(path)
        assert script.exists and (script.user, script.mode) == ("root", 0o750), path


def test_the_newest_off_host_snapshot_is_recent(target, offsite):
    hostname = target.host.check_output("hostname")
    listed = target.host.run(f"{RESTIC} snapshots --json --tag {STATE_TAG} --host {hostname} --latest 1")
    assert listed.rc == 0, f"cannot list the snapshots in {offsite.repository}: {listed.stderr[-1000:]}"
    snapshots = json.loads(listed.stdout or "[]")
    assert snapshots, f"no snapshot of this host's state in {offsite.repository}"
    newest = max(snapshot["time"] for snapshot in snapshots)
    # Ages by the host's own clock: the controller's may differ.
    age = int(target.host.check_output("date +%s")) - int(target.host.check_output(f"date -d {newest} +%s"))
    assert age <= MAX_AGE_HOURS * 3600, f"the newest off-host snapshot is {age // 3600} h old (taken {newest})"
