"""Role tls without a host: when it asks the ACME server, what it asks, and the files it places."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from openclaw_kit.settings import HostSettings, SettingsError, validate_hosts
from openclaw_kit.templates import render
from roles import tls as role
from roles.tls import (
    AcmeAccount,
    IssuedCertificate,
    account_update_commands,
    issue_commands,
    needs_issuance,
    renewal_minute,
)
from tests.unit.fake_host import ENV, FACTS, fake_inventory

BASE = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}
NOW = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC)
LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


def settings(**data) -> HostSettings:
    return validate_hosts({"gw": {**BASE, **data}}, ENV)["gw"]


def issued(**changes) -> dict:
    return {"names": ["gw.example.com"], "not_after": NOW + datetime.timedelta(days=80), "server": LETSENCRYPT,
            "key_type": "ecdsa", **changes}


def test_a_fitting_certificate_is_left_alone():
    assert needs_issuance(settings(), issued(), NOW) is None
    assert needs_issuance(settings(extra_domains=["a.example.com"]), issued(names=["a.example.com", "gw.example.com"]), NOW) is None


@pytest.mark.parametrize("host_has, settings_data, reason", [
    (None, {}, "no certificate yet"),
    (issued(), {"extra_domains": ["chat.example.com"]}, "names changed"),
    (issued(names=["gw.example.com", "old.example.com"]), {}, "names changed"),
    (issued(), {"acme_directory": "letsencrypt-staging"}, "ACME directory changed"),
    (issued(key_type="rsa"), {}, "key type changed"),
    (issued(not_after=NOW + datetime.timedelta(days=29)), {}, "has not renewed it"),
])
def test_what_makes_a_deploy_ask_for_a_certificate(host_has, settings_data, reason):
    assert reason in needs_issuance(settings(**settings_data), host_has, NOW)


def test_issuance_is_webroot_http01_ecdsa_p256_for_every_name():
    first, link, reload, remember = issue_commands(settings(extra_domains=["chat.example.com"]), force=False)
    assert first.startswith("certbot certonly --non-interactive --agree-tos --no-eff-email --email admin@example.com ")
    for part in ("--webroot --webroot-path /var/www/acme", "--cert-name gw.example.com", "-d gw.example.com -d chat.example.com",
                 "--key-type ecdsa --elliptic-curve secp256r1", f"--server {LETSENCRYPT}", "--keep-until-expiring"):
        assert part in first
    assert "REQUESTS_CA_BUNDLE" not in first and "--force-renewal" not in first
    assert link == "ln -sfn /etc/letsencrypt/live/gw.example.com /etc/ssl/openclaw-kit/current"
    # nginx reloads onto the new certificate only with a configuration nginx -t accepts.
    assert reload == "nginx -t -q && systemctl reload nginx.service"
    assert remember == f"printf '%s\\n' admin@example.com > {role.ACCOUNT_EMAIL}"


def test_a_private_acme_ca_is_trusted_only_for_certbot(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    first = issue_commands(settings(acme_ca_file=str(ca), acme_directory="https://10.0.0.1:14000/dir"), force=True)[0]
    assert first.startswith(f"REQUESTS_CA_BUNDLE={role.ACME_CA_FILE} certbot certonly ")
    assert "--force-renewal" in first and "--server https://10.0.0.1:14000/dir" in first


def test_acme_ca_file_must_be_a_pem_file(tmp_path):
    with pytest.raises(SettingsError, match=r"host gw: acme_ca_file = .*nope.pem"):
        settings(acme_ca_file=str(tmp_path / "nope.pem"))


def test_renewal_minute_is_fixed_per_domain():
    assert renewal_minute(settings()) == renewal_minute(settings())
    minutes = {renewal_minute(settings(domain=f"gw{i}.example.com")) for i in range(20)}
    assert all(0 <= m < 60 for m in minutes) and len(minutes) > 5


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command line tool")
def test_the_fact_reads_what_openssl_and_certbot_write(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw.example.com")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW).not_valid_after(datetime.datetime(2027, 2, 23, 10, 0, 0, tzinfo=datetime.UTC))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("gw.example.com"), x509.DNSName("chat.example.com")]), critical=False)
            .sign(key, hashes.SHA256()))
    from cryptography.hazmat.primitives.serialization import Encoding
    live = tmp_path / "letsencrypt" / "live" / "gw.example.com"
    live.mkdir(parents=True)
    (live / "cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    renewal = tmp_path / "letsencrypt" / "renewal"
    renewal.mkdir()
    (renewal / "gw.example.com.conf").write_text(f"version = 2.1.0\n[renewalparams]\nkey_type = ecdsa\nserver = {LETSENCRYPT}\n")

    command = IssuedCertificate().command("gw.example.com").replace("/etc/letsencrypt", str(tmp_path / "letsencrypt"))
    output = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout.splitlines()
    assert IssuedCertificate().process(output) == {
        "names": ["chat.example.com", "gw.example.com"], "server": LETSENCRYPT, "key_type": "ecdsa",
        "not_after": datetime.datetime(2027, 2, 23, 10, 0, 0, tzinfo=datetime.UTC),
    }
    # No certificate yet: the command prints nothing and succeeds.
    missing = IssuedCertificate().command("other.example.com").replace("/etc/letsencrypt", str(tmp_path / "letsencrypt"))
    assert subprocess.run(["sh", "-c", missing], capture_output=True, text=True, check=True).stdout == ""
    assert IssuedCertificate().process([]) is None


def test_the_account_fact_sees_certbots_account_and_the_kits_marker(tmp_path):
    accounts = tmp_path / "letsencrypt/accounts/10.231.0.1:14000/dir/1f2e"
    marker = tmp_path / "account-email"

    def fact(directory: str = "https://10.231.0.1:14000/dir"):
        command = AcmeAccount().command(directory, str(marker)).replace("/etc/letsencrypt", str(tmp_path / "letsencrypt"))
        return AcmeAccount().process(subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout.splitlines())

    assert fact() == {"exists": False, "email": None} == AcmeAccount.default(), "pyinfra's answer when nothing was printed"
    accounts.mkdir(parents=True)
    # As certbot 2.x writes it: no contact on disk.
    (accounts / "regr.json").write_text(json.dumps({"body": {}, "uri": "https://10.231.0.1:14000/my-account/1f2e"}))
    assert fact() == {"exists": True, "email": None}
    marker.write_text("ops@example.com\n")
    assert fact() == {"exists": True, "email": "ops@example.com"}
    assert fact(LETSENCRYPT) == {"exists": False, "email": "ops@example.com"}


def test_a_changed_admin_email_updates_the_account_at_the_settings_directory(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    update, remember = account_update_commands(settings(admin_email="ops@example.com"))
    assert update == f"certbot update_account --non-interactive --no-eff-email --email ops@example.com --server {LETSENCRYPT}"
    assert remember == f"printf '%s\\n' ops@example.com > {role.ACCOUNT_EMAIL}"
    private = account_update_commands(settings(acme_ca_file=str(ca), acme_directory="https://10.0.0.1:14000/dir"))[0]
    assert private.startswith(f"REQUESTS_CA_BUNDLE={role.ACME_CA_FILE} certbot update_account ")


def rendered(src: str, acme_ca_file: str | None = None, **extra) -> str:
    return render("tls", src, renew_command=role.RENEW_COMMAND, reload_pending=role.RELOAD_PENDING, log_tag=role.LOG_TAG,
                  acme_ca_file=acme_ca_file, **extra)


@pytest.mark.parametrize("src", ["renew-certificates.j2", "deploy-hook.j2"])
@pytest.mark.parametrize("acme_ca_file", [None, role.ACME_CA_FILE])
def test_scripts_are_valid_shell(src, acme_ca_file, tmp_path):
    script = tmp_path / "script"
    script.write_text(rendered(src, acme_ca_file))
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True).returncode == 0
    assert ("REQUESTS_CA_BUNDLE" in script.read_text()) == (acme_ca_file is not None and src == "renew-certificates.j2")


def test_the_renewal_reloads_nginx_only_after_nginx_t():
    for src in ("renew-certificates.j2", "deploy-hook.j2"):
        script = rendered(src)
        assert "if check=$(nginx -t -q 2>&1) && systemctl reload nginx.service; then" in script
        assert "-p user.err --" in script, "failures go to the journal at priority err"
    renew = rendered("renew-certificates.j2")
    assert "certbot renew --quiet --no-random-sleep-on-renew" in renew
    assert 'sleep "$(shuf -i 0-1799 -n 1)"' in renew


def test_cron_runs_the_renewal_twice_a_day_as_root():
    cron = rendered("cron.j2", minute=7, hours="3,15", job=role.JOB_RUNNER, job_name=role.JOB_NAME)
    entries = [line for line in cron.splitlines() if line and line[0].isdigit()]
    # Through the job runner: the outcome lands in the audit log.
    assert entries == [f"7 3,15 * * * root /usr/local/sbin/openclaw-kit-job certificate-renewal -- {role.RENEW_COMMAND}"]
    assert cron.endswith("\n"), "cron ignores a last line without a newline"


@pytest.mark.parametrize(("timer", "operations"), [
    (None, ["tls | certbot.timer stopped, disabled and masked"]),
    (["/dev/null", "failed"], ["tls | certbot.timer's failed state cleared (masked while running by an earlier deploy)"]),
    (["/dev/null", "inactive"], []),
], ids=["fresh host: stopped before the mask", "masked while running by an older kit", "masked"])
def test_certbot_timer_is_stopped_before_it_is_masked_and_never_left_failed(tmp_path, timer, operations):
    responses = {**FACTS, **({"systemctl is-failed certbot.timer": timer} if timer else {})}
    (tmp_path / "inventory.py").write_text(fake_inventory(fake_responses=responses))
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "--dry", "--json", str(tmp_path / "inventory.py"), "deploy.py"],
                         cwd=Path(__file__).resolve().parents[2], env={**os.environ, **ENV}, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    names = [op["name"] for op in json.loads(run.stdout[run.stdout.index("{"):])["plan"]]
    assert [name for name in names if "certbot.timer" in name] == operations
