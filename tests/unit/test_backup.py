"""Role backup: the offsite_backup settings, the rendered scripts (shellcheck), the restore script run
for real with stand-ins for restic, OpenClaw's CLI and systemctl, a fake-host deploy that shows no secret."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openclaw_kit.settings import SettingsError, validate_hosts
from openclaw_kit.templates import render
from roles import backup, openclaw
from tests.unit.fake_host import ENV, fake_inventory

REPO = Path(__file__).resolve().parents[2]
BASE = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
SFTP = {"repository": "sftp:backup@10.0.0.2:/srv/restic/gw", "password": "${RESTIC_PASSWORD}", "sftp_host_key": HOST_KEY}
S3 = {"repository": "s3:https://s3.example.com/bucket/gw", "password": "${RESTIC_PASSWORD}",
      "s3_access_key_id": "${S3_KEY_ID}", "s3_secret_access_key": "${S3_SECRET}"}
SECRETS = {"RESTIC_PASSWORD": "P" * 24, "S3_KEY_ID": "AKIAEXAMPLEKEYID", "S3_SECRET": "S" * 40}
SHELLCHECK = shutil.which("shellcheck")


def settings(offsite):
    return validate_hosts({"gw": {**BASE, "offsite_backup": offsite}}, {**ENV, **SECRETS})["gw"]


def problems(offsite) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        settings(offsite)
    return caught.value.problems


# --- settings ------------------------------------------------------------------------------------------


def test_sftp_and_s3_repositories_are_accepted():
    sftp = settings(SFTP).offsite_backup
    assert sftp.sftp == {"user": "backup", "host": "10.0.0.2", "path": "/srv/restic/gw"} and sftp.secrets() == {}
    s3 = settings(S3).offsite_backup
    assert s3.sftp is None and set(s3.secrets()) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert (s3.keep_daily, s3.keep_weekly, s3.keep_monthly) == (7, 4, 12)
    assert settings(None).offsite_backup is None


@pytest.mark.parametrize("repository", ["/srv/restic", "sftp:backup@10.0.0.2:relative", "rest:http://host/", "s3:http://s3.example.com/b",
                                        "sftp:backup@10.0.0.2:/srv/it's", "sftp:backup@host:/path with space"])
def test_a_bad_repository_is_a_settings_error_naming_host_setting_value_and_rule(repository):
    found = problems({**SFTP, "repository": repository})
    assert found == [f"host gw: offsite_backup.repository = {repository!r}: must be a restic repository sftp:user@host:/absolute/path "
                     "or s3:https://host/bucket[/prefix] (no credentials, spaces or quotes in it)"]


def test_credentials_in_an_s3_url_are_refused():
    found = problems({**S3, "repository": "s3:https://AKIA:secret@s3.example.com/bucket"})
    assert len(found) == 1 and "must not carry credentials" in found[0]


@pytest.mark.parametrize("field", ["password", "s3_access_key_id", "s3_secret_access_key"])
def test_a_literal_secret_is_refused_and_never_echoed(field):
    literal = "hunter2-literal-" + field
    found = problems({**S3, field: literal})
    assert len(found) == 1 and found[0].startswith(f"host gw: offsite_backup.{field} = <literal value hidden, "), found
    assert "must be a ${VAR} reference" in found[0] and literal not in found[0]


def test_target_specific_settings_must_match_the_repository():
    assert "needs the target's SSH host key" in problems({key: value for key, value in SFTP.items() if key != "sftp_host_key"})[0]
    assert "do not apply" in problems({**SFTP, "s3_access_key_id": "${S3_KEY_ID}"})[0]
    assert "needs s3_access_key_id and s3_secret_access_key" in problems({**S3, "s3_secret_access_key": None})[0]
    assert "applies to an SFTP repository only" in problems({**S3, "sftp_host_key": HOST_KEY})[0]
    assert "must be an SSH public host key" in problems({**SFTP, "sftp_host_key": f"10.0.0.2 {HOST_KEY}"})[0]


def test_a_short_password_is_refused_without_its_value():
    with pytest.raises(SettingsError) as caught:
        validate_hosts({"gw": {**BASE, "offsite_backup": SFTP}}, {**ENV, "RESTIC_PASSWORD": "short"})
    found = caught.value.problems
    assert len(found) == 1 and "at least 16 characters" in found[0] and "'short'" not in found[0]


# --- rendering -----------------------------------------------------------------------------------------


def scripts(offsite) -> dict[str, str]:
    s = settings(offsite)
    return {
        "restic": render("backup", "openclaw-kit-restic.j2", **backup.restic_data(s.offsite_backup)),
        "offsite": render("backup", "openclaw-kit-offsite-backup.j2", **backup.offsite_data(s)),
        "restore": render("backup", "openclaw-kit-restore.j2", **backup.restore_data(s)),
    }


def test_sftp_is_strict_about_the_target_s_host_key_and_uses_the_host_s_own_key():
    wrapper = scripts(SFTP)["restic"]
    assert "export RESTIC_REPOSITORY='sftp:backup@10.0.0.2:/srv/restic/gw'" in wrapper
    assert f"export RESTIC_PASSWORD_FILE='{backup.PASSWORD_FILE}'" in wrapper
    for option in ("-o StrictHostKeyChecking=yes", f"-o UserKnownHostsFile={backup.KNOWN_HOSTS}", f"-i {backup.SSH_KEY}",
                   "-o IdentitiesOnly=yes", "-o BatchMode=yes", "backup@10.0.0.2 -s sftp"):
        assert option in wrapper
    assert "s3.env" not in wrapper and "P" * 24 not in wrapper
    assert backup.known_hosts_pattern("10.0.0.2", 22) == "10.0.0.2"
    assert backup.known_hosts_pattern("10.0.0.2", 2222) == "[10.0.0.2]:2222"


def test_s3_credentials_come_from_the_0600_file_not_the_script():
    wrapper = scripts(S3)["restic"]
    assert f". '{backup.S3_ENV}'" in wrapper and "sftp.command" not in wrapper
    assert not any(value in wrapper for value in SECRETS.values())


def test_retention_comes_from_settings():
    offsite = scripts({**SFTP, "keep_daily": 3, "keep_weekly": 2, "keep_monthly": 6})["offsite"]
    assert "--keep-daily 3 --keep-weekly 2 --keep-monthly 6" in offsite
    assert "--tag audit-log --keep-within 2555d" in offsite
    # Without grouping by tag, every day's snapshot (another archive path) would be a group of its own, all kept.
    assert offsite.count("forget --group-by host,tags") == 2


@pytest.mark.skipif(SHELLCHECK is None, reason="needs shellcheck on the controller (./kit installs it)")
@pytest.mark.parametrize("offsite", [SFTP, S3], ids=["sftp", "s3"])
def test_the_scripts_pass_shellcheck(tmp_path, offsite):
    for name, text in scripts(offsite).items():
        path = tmp_path / name
        path.write_text(text)
        run = subprocess.run([SHELLCHECK, "-s", "bash", str(path)], capture_output=True, text=True)
        assert run.returncode == 0, f"{name}:\n{run.stdout}"


# --- the restore script, run with stand-ins ----------------------------------------------------------------

FAKE_RESTIC = """#!/bin/bash
# restore SNAPSHOT --target DIR ...: the snapshot holds one archive, as the offsite job stores it.
echo "$@" >> "$CALLS"
[ "$1" = restore ] || exit 3
target=$4
mkdir -p "$target/var/backups/openclaw"
cp "$ARCHIVE" "$target/var/backups/openclaw/2026-12-01T03-37-00.000Z-openclaw-backup.tar.gz"
"""
# OpenClaw's `backup restore ARCHIVE --target DIR`: the archive's root, its manifest, payload/posix/<path>.
FAKE_CLI = """#!/bin/bash
echo "cli $*" >> "$CALLS"
[ "$1 $2" = "backup restore" ] && [ "$4" = --target ] || exit 3
root="$5/2026-12-01T03-37-00.000Z-openclaw-backup"
mkdir -p "$root/payload/posix$STATE_DIR"
tar -xzf "$3" -C "$root/payload/posix$STATE_DIR"
printf '{"schemaVersion":1,"archiveRoot":"2026-12-01T03-37-00.000Z-openclaw-backup","assets":[{"kind":"state","sourcePath":"%s","archivePath":"2026-12-01T03-37-00.000Z-openclaw-backup/payload/posix%s"}]}' \
  "$STATE_DIR" "$STATE_DIR" > "$root/manifest.json"
"""
FAKE_SYSTEMCTL = """#!/bin/bash
echo "systemctl $*" >> "$CALLS"
"""


@pytest.fixture
def restore_env(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, text in (("restic", FAKE_RESTIC), ("cli", FAKE_CLI), ("systemctl", FAKE_SYSTEMCTL)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    (state / "openclaw.json").write_text('{"gateway": {"port": 1}, "agents": {"list": ["old"]}}')
    (state / "marker").write_text("current\n")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "openclaw.json").write_text('{"gateway": {"port": 2}, "agents": {"list": ["restored-agent"]}}')
    (saved / "marker").write_text("restored\n")
    subprocess.run(["tar", "-czf", str(tmp_path / "archive.tar.gz"), "-C", str(saved), "."], check=True)
    (tmp_path / "desired.json").write_text('// the kit\'s sections\n{"gateway": {"port": 18789}}\n')
    (tmp_path / "backups").mkdir()
    return tmp_path


def render_restore(root: Path, health: str) -> Path:
    state = root / "state"
    script = render("backup", "openclaw-kit-restore.j2", restic=root / "bin/restic", cli=root / "bin/cli", merge=Path(openclaw.jsonconfig.__file__),
                    desired_config=root / "desired.json", state_dir=state, live_config=state / "openclaw.json", service="openclaw-gateway",
                    service_user="root", state_tag="gateway-state", work_parent=root / "backups", health_wait=health)
    path = root / "openclaw-kit-restore"
    path.write_text(script)
    path.chmod(0o755)
    return path


def run_restore(root: Path, health: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{root / 'bin'}:{os.environ['PATH']}", "CALLS": str(root / "calls"),
           "ARCHIVE": str(root / "archive.tar.gz"), "STATE_DIR": str(root / "state")}
    return subprocess.run([str(render_restore(root, health)), *args], env=env, capture_output=True, text=True, timeout=60)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the script sets ownership (install -o, chown): needs root")


@needs_root
def test_restore_puts_the_restored_state_in_place_with_the_kits_config_sections(restore_env):
    root = restore_env
    run = run_restore(root, f"grep -q restored {root}/state/marker", "--host", "old-gw")
    assert run.returncode == 0, run.stderr
    state = root / "state"
    assert (state / "marker").read_text() == "restored\n"
    config = json.loads((state / "openclaw.json").read_text())
    # OpenClaw's own sections come from the backup; the kit's from this host's desired config.
    assert config == {"gateway": {"port": 18789}, "agents": {"list": ["restored-agent"]}}
    assert oct(state.stat().st_mode & 0o777) == "0o700" and oct((state / "openclaw.json").stat().st_mode & 0o777) == "0o600"
    calls = (root / "calls").read_text().splitlines()
    assert calls[0].startswith("restore latest --target ") and calls[0].endswith("--tag gateway-state --host old-gw")
    assert calls[1].startswith("cli backup restore ") and " --target " in calls[1]
    assert calls.index("systemctl stop openclaw-gateway.service") < calls.index("systemctl start openclaw-gateway.service")
    previous = [p for p in (root / "backups").iterdir() if p.name.startswith("openclaw-state-before-restore-")]
    assert len(previous) == 1 and (previous[0] / "marker").read_text() == "current\n"
    assert [p.name for p in (root / "backups").iterdir() if p.name.startswith("openclaw-restore.")] == [], "work directory left behind"
    assert "restored snapshot latest (of host old-gw)" in run.stdout


@needs_root
def test_a_named_snapshot_is_restored_without_a_host_filter(restore_env):
    run = run_restore(restore_env, "true", "4f1c2a9e")
    assert run.returncode == 0, run.stderr
    assert (restore_env / "calls").read_text().splitlines()[0].endswith("--tag gateway-state")
    assert run_restore(restore_env, "true", "a", "b").returncode == 2


@needs_root
def test_a_gateway_that_does_not_come_up_gets_its_previous_state_back(restore_env):
    run = run_restore(restore_env, "false")
    assert run.returncode == 1
    assert "the gateway did not come up with the restored state; the previous state is back" in run.stderr
    assert (restore_env / "state" / "marker").read_text() == "current\n"
    calls = (restore_env / "calls").read_text().splitlines()
    assert calls[-1] == "systemctl start openclaw-gateway.service"


@needs_root
def test_an_archive_openclaw_refuses_leaves_the_running_gateway_alone(restore_env):
    (restore_env / "bin" / "cli").write_text("#!/bin/bash\necho 'archive verification failed' >&2\nexit 1\n")
    run = run_restore(restore_env, "true")
    assert run.returncode == 1 and "openclaw backup restore refused the archive" in run.stderr
    assert (restore_env / "state" / "marker").read_text() == "current\n"
    assert "systemctl stop" not in (restore_env / "calls").read_text()


# --- a deploy against pyinfra's fake connector -----------------------------------------------------------


def test_a_deploy_with_offsite_backups_shows_no_secret_even_verbose(tmp_path):
    sentinels = {"RESTIC_PASSWORD": "RESTICSENTINEL" * 3, "S3_KEY_ID": "KEYIDSENTINEL" * 2, "S3_SECRET": "S3SECRETSENTINEL" * 3}
    (tmp_path / "inventory.py").write_text(fake_inventory(offsite_backup=S3))
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "-vvv", "--debug", "--diff", str(tmp_path / "inventory.py"), "deploy.py"],
                         cwd=REPO, env={**os.environ, **ENV, **sentinels}, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    for name in ("Install restic", f"Repository password {backup.PASSWORD_FILE}", f"S3 credentials {backup.S3_ENV}",
                 f"Restore command {backup.RESTORE}", f"Cron job {backup.CRON_FILE}"):
        assert f"backup | {name}" in output, name
    assert "SENTINEL" not in output


# --- the off-host job, run with a stand-in restic --------------------------------------------------------

FAKE_OFFSITE_RESTIC = """#!/bin/bash
echo "$*" >> "$CALLS"
case "$1" in
  cat) [ -e "$REPOSITORY" ] || { printf '%s\\n' "$CAT_ERROR" >&2; exit 1; } ;;
  init) touch "$REPOSITORY" ;;
  backup) echo '{"message_type":"status","percent_done":0.5}'
          echo "{\\"message_type\\":\\"summary\\",\\"snapshot_id\\":\\"$4-0001\\"}" ;;
esac
"""
NO_REPOSITORY = "Fatal: unable to open config file: Lstat: file does not exist\nIs there a repository at the following location?"


def run_offsite(root: Path, cat_error: str = NO_REPOSITORY) -> subprocess.CompletedProcess:
    (root / "restic").write_text(FAKE_OFFSITE_RESTIC)
    (root / "restic").chmod(0o755)
    script = render("backup", "openclaw-kit-offsite-backup.j2", **{
        **backup.offsite_data(settings(SFTP)), "restic": root / "restic", "store": root / "store",
        "local_backup_lock": root / "backup.lock", "audit_dir": root / "audit"})
    (root / "offsite").write_text(script)
    env = {**os.environ, "CALLS": str(root / "calls"), "REPOSITORY": str(root / "repository"), "CAT_ERROR": cat_error}
    return subprocess.run(["bash", str(root / "offsite")], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def offsite_root(tmp_path):
    for directory in ("store", "audit"):
        (tmp_path / directory).mkdir()
    for name, age in (("2026-11-30T03-37-00.000+00-00-openclaw-backup.tar.gz", 86400), ("2026-12-01T03-37-00.000+00-00-openclaw-backup.tar.gz", 0)):
        (tmp_path / "store" / name).write_text("archive")
        os.utime(tmp_path / "store" / name, (time.time() - age, time.time() - age))
    for name in ("audit.log", "audit.log-20261130-000000", "audit.log-20261201-000000"):
        (tmp_path / "audit" / name).write_text("{}\n")
    return tmp_path


def test_the_job_initialises_a_missing_repository_copies_the_newest_archive_and_the_rotated_audit_files(offsite_root):
    run = run_offsite(offsite_root)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    newest = str(offsite_root / "store" / "2026-12-01T03-37-00.000+00-00-openclaw-backup.tar.gz")
    assert result == {"archive": newest, "state_snapshot": "gateway-state-0001", "audit_snapshot": "audit-log-0001", "audit_files": 2}
    calls = (offsite_root / "calls").read_text().splitlines()
    assert calls[:3] == ["cat config", "init", f"backup --json --tag gateway-state {newest}"]
    assert calls[3] == f"backup --json --tag audit-log {offsite_root}/audit/audit.log-20261130-000000 {offsite_root}/audit/audit.log-20261201-000000"
    assert calls[4:] == ["forget --group-by host,tags --tag gateway-state --keep-daily 7 --keep-weekly 4 --keep-monthly 12",
                         "forget --group-by host,tags --tag audit-log --keep-within 2555d", "prune"]
    # The next run finds the repository and does not initialise it again.
    (offsite_root / "calls").unlink()
    assert run_offsite(offsite_root).returncode == 0
    assert "init" not in (offsite_root / "calls").read_text().splitlines()


def test_a_repository_restic_cannot_open_is_an_error_never_a_new_repository(offsite_root):
    run = run_offsite(offsite_root, cat_error="Fatal: wrong password or no key found")
    assert run.returncode == 1 and "wrong password" in run.stderr
    assert (offsite_root / "calls").read_text().splitlines() == ["cat config"]


def test_no_local_archive_is_an_error(offsite_root):
    for archive in (offsite_root / "store").iterdir():
        archive.unlink()
    run = run_offsite(offsite_root)
    assert run.returncode == 1 and "the local backup has not run" in run.stderr
