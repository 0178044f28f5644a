"""Role backup: the offsite_backup settings, the rendered scripts, a fake-host deploy that shows no secret.
The scripts themselves are run in test_scripts.py and shellchecked in test_host_shell.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from openclaw_kit.settings import SettingsError, validate_hosts
from openclaw_kit.templates import render
from roles import backup
from tests.unit.fake_host import ENV, fake_inventory

REPO = Path(__file__).resolve().parents[2]
BASE = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
SFTP = {"repository": "sftp:backup@10.0.0.2:/srv/restic/gw", "password": "${RESTIC_PASSWORD}", "sftp_host_key": HOST_KEY}
S3 = {"repository": "s3:https://s3.example.com/bucket/gw", "password": "${RESTIC_PASSWORD}",
      "s3_access_key_id": "${S3_KEY_ID}", "s3_secret_access_key": "${S3_SECRET}"}
SECRETS = {"RESTIC_PASSWORD": "P" * 24, "S3_KEY_ID": "AKIAEXAMPLEKEYID", "S3_SECRET": "S" * 40}


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


@pytest.fixture
def ca_file(tmp_path) -> str:
    from openclaw_kit.certificates import certificate_authority, pem

    (tmp_path / "ca.pem").write_bytes(pem(certificate_authority("test S3 CA", days=1)[0]))
    return str(tmp_path / "ca.pem")


def test_target_specific_settings_must_match_the_repository(ca_file):
    assert "needs the target's SSH host key" in problems({key: value for key, value in SFTP.items() if key != "sftp_host_key"})[0]
    assert "do not apply" in problems({**SFTP, "s3_access_key_id": "${S3_KEY_ID}"})[0]
    assert "s3_ca_file do not apply" in problems({**SFTP, "s3_ca_file": ca_file})[0]
    assert "needs s3_access_key_id and s3_secret_access_key" in problems({**S3, "s3_secret_access_key": None})[0]
    assert "applies to an SFTP repository only" in problems({**S3, "sftp_host_key": HOST_KEY})[0]
    assert "must be an SSH public host key" in problems({**SFTP, "sftp_host_key": f"10.0.0.2 {HOST_KEY}"})[0]


def test_a_short_password_is_refused_without_its_value():
    with pytest.raises(SettingsError) as caught:
        validate_hosts({"gw": {**BASE, "offsite_backup": SFTP}}, {**ENV, "RESTIC_PASSWORD": "short"})
    found = caught.value.problems
    assert len(found) == 1 and "at least 16 characters" in found[0] and "'short'" not in found[0]


def test_s3_ca_file_is_a_pem_file_of_certificates(tmp_path, ca_file):
    assert settings({**S3, "s3_ca_file": ca_file}).offsite_backup.s3_ca_file == ca_file
    missing = problems({**S3, "s3_ca_file": str(tmp_path / "none.pem")})
    assert missing == [f"host gw: offsite_backup.s3_ca_file = {str(tmp_path / 'none.pem')!r}: "
                       "must be a readable PEM file on the controller (No such file or directory)"]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    found = problems({**S3, "s3_ca_file": str(garbage)})
    assert len(found) == 1 and found[0].startswith(f"host gw: offsite_backup.s3_ca_file = {str(garbage)!r}: "
                                                   "must be a PEM file of CA certificates restic can load ("), found


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


def test_s3_with_a_ca_file_passes_it_to_restic(ca_file):
    assert f"exec restic --cacert '{backup.S3_CA_FILE}' \"$@\"" in scripts({**S3, "s3_ca_file": ca_file})["restic"]
    assert "--cacert" not in scripts(S3)["restic"]


def test_retention_comes_from_settings():
    offsite = scripts({**SFTP, "keep_daily": 3, "keep_weekly": 2, "keep_monthly": 6})["offsite"]
    assert "--keep-daily 3 --keep-weekly 2 --keep-monthly 6" in offsite
    assert "--tag audit-log --keep-within 2555d" in offsite
    # Without grouping by tag, every day's snapshot (another archive path) would be a group of its own, all kept.
    assert offsite.count("forget --group-by host,tags") == 2


# --- a deploy against pyinfra's fake connector -----------------------------------------------------------


def test_a_deploy_with_offsite_backups_shows_no_secret_even_verbose(tmp_path, ca_file):
    sentinels = {"RESTIC_PASSWORD": "RESTICSENTINEL" * 3, "S3_KEY_ID": "KEYIDSENTINEL" * 2, "S3_SECRET": "S3SECRETSENTINEL" * 3}
    (tmp_path / "inventory.py").write_text(fake_inventory(offsite_backup={**S3, "s3_ca_file": ca_file}))
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "-vvv", "--debug", "--diff", str(tmp_path / "inventory.py"), "deploy.py"],
                         cwd=REPO, env={**os.environ, **ENV, **sentinels}, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    for name in ("Install restic", f"Repository password {backup.PASSWORD_FILE}", f"S3 credentials {backup.S3_ENV}",
                 f"Restore command {backup.RESTORE}", f"S3 server's CA {backup.S3_CA_FILE}",
                 # S3: the deploy opens the repository itself (a wrong key fails it).
                 "Off-host repository opens (initialised when missing)", f"Cron job {backup.CRON_FILE}"):
        assert f"backup | {name}" in output, name
    assert "SENTINEL" not in output
    # Without Recommends (restic's is fuse), through openclaw_kit.packages.install_missing.
    assert "install --no-install-recommends restic" in output
