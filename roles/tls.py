"""Role tls: a real certificate for nginx from an ACME CA (Let's Encrypt by default), kept renewed.

certbot from the distro, http-01 through nginx's ACME webroot (role nginx serves it on port 80,
on a self-signed bootstrap certificate until now), ECDSA P-256. After the first issuance the
link nginx reads its certificate from is pointed at certbot's live directory, which renewals
update in place. One renewal path: the kit's cron entry (certbot.timer is masked), through role
logs' job runner, so every outcome is a JSON line in the audit log and the journal; certbot's deploy
hook reloads nginx only when `nginx -t` passes.

A deploy asks the ACME server for a certificate only when the host has none for the settings'
names, from the settings' ACME directory, with an ECDSA key, valid for another RENEW_DAYS days;
otherwise it sends nothing to it.
"""

from __future__ import annotations

import datetime
import hashlib
import shlex
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from openclaw_kit.layout import ACME_WEBROOT, JOB_RUNNER, LETSENCRYPT_LIVE, TLS_CURRENT, TLS_DIR
from openclaw_kit.packages import install_missing
from openclaw_kit.platform import platform_of
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import template

ACME_CA_FILE = f"{TLS_DIR}/acme-ca.pem"
RENEW_COMMAND = "/usr/local/sbin/openclaw-kit-renew-certificates"
DEPLOY_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/openclaw-kit-reload-nginx"
CRON_FILE = "/etc/cron.d/openclaw-kit-certbot"
# A renewed certificate nginx has not loaded (its configuration failed `nginx -t`); survives reboots.
RELOAD_PENDING = "/var/lib/letsencrypt/openclaw-kit-reload-pending"
LOG_TAG = "openclaw-kit-tls"
JOB_NAME = "certificate-renewal"  # in the audit log's JSON lines (role logs' job runner)
# The email the kit last registered the ACME account with (certbot keeps none on disk).
ACCOUNT_EMAIL = "/var/lib/letsencrypt/openclaw-kit-account-email"
# certbot renews 30 days before expiry; a deploy that finds less left knows the cron path failed.
RENEW_DAYS = 30
CERTBOT_TIMER_MASK = "/etc/systemd/system/certbot.timer"


class IssuedCertificate(FactBase):
    """certbot's certificate `name`: its DNS names, expiry, ACME server and key type; None if none."""

    def command(self, cert_name: str):
        live, conf = f"{LETSENCRYPT_LIVE}/{cert_name}/cert.pem", f"/etc/letsencrypt/renewal/{cert_name}.conf"
        return (
            f"if [ -f {shlex.quote(live)} ] && [ -f {shlex.quote(conf)} ]; then "
            f"openssl x509 -in {shlex.quote(live)} -noout -ext subjectAltName -enddate && "
            f"grep -E '^(server|key_type) *=' {shlex.quote(conf)}; fi || true"
        )

    def process(self, output: list[str]):
        found = {"names": [], "not_after": None, "server": None, "key_type": None}
        for line in output:
            line = line.strip()
            if line.startswith("DNS:"):
                found["names"] = sorted(part.strip().removeprefix("DNS:") for part in line.split(","))
            elif line.startswith("notAfter="):
                found["not_after"] = datetime.datetime.strptime(
                    line.removeprefix("notAfter="), "%b %d %H:%M:%S %Y %Z"
                ).replace(tzinfo=datetime.UTC)
            elif "=" in line and line.split("=", 1)[0].strip() in ("server", "key_type"):
                key, value = (part.strip() for part in line.split("=", 1))
                found[key] = value
        return found if found["not_after"] else None


class AcmeAccount(FactBase):
    """Whether certbot has an account at an ACME directory, and the email the kit last gave it (its marker file).

    certbot keeps no contact email on disk (regr.json's body is empty), and asking the server
    (`certbot show_account`) on every run would make a no-op deploy talk to the ACME server.
    """

    def command(self, directory: str, marker: str):
        url = urlsplit(directory)
        accounts = shlex.quote(f"/etc/letsencrypt/accounts/{url.netloc}{url.path}")
        return (f"if ls {accounts}/*/regr.json >/dev/null 2>&1; then echo account; fi; "
                f"if [ -f {shlex.quote(marker)} ]; then echo \"email=$(cat {shlex.quote(marker)})\"; fi")

    @staticmethod
    def default():
        # pyinfra gives this, not process()'s answer, when the command printed nothing: a fresh host.
        return {"exists": False, "email": None}

    def process(self, output: list[str]):
        emails = [line.removeprefix("email=") for line in output if line.startswith("email=")]
        return {"exists": "account" in output, "email": emails[0] if emails else None}


def account_update_commands(settings: HostSettings) -> list[str]:
    """certbot's update_account: the ACME server learns the new admin_email (expiry notices, account recovery)."""
    env = f"REQUESTS_CA_BUNDLE={ACME_CA_FILE} " if settings.acme_ca_file else ""
    return [f"{env}certbot update_account --non-interactive --no-eff-email --email {shlex.quote(settings.admin_email)} "
            f"--server {shlex.quote(settings.acme_directory)}", remember_email(settings)]


def remember_email(settings: HostSettings) -> str:
    return f"printf '%s\\n' {shlex.quote(settings.admin_email)} > {ACCOUNT_EMAIL}"


def needs_issuance(settings: HostSettings, issued: dict | None, now: datetime.datetime) -> str | None:
    """Why the deploy must ask the ACME server for a certificate, or None when the host has a fitting one."""
    if not issued:
        return "no certificate yet"
    if issued["names"] != sorted([settings.domain, *settings.extra_domains]):
        return f"names changed (has {', '.join(issued['names'])})"
    if issued["server"] != settings.acme_directory:
        return f"ACME directory changed (was {issued['server']})"
    if issued["key_type"] != "ecdsa":
        return f"key type changed (was {issued['key_type']})"
    if issued["not_after"] - now < datetime.timedelta(days=RENEW_DAYS):
        return f"expires {issued['not_after']:%Y-%m-%d}, and the renewal has not renewed it"
    return None


def issue_commands(settings: HostSettings, force: bool) -> list[str]:
    """certbot certonly over http-01, then nginx onto the issued certificate (checked before the reload)."""
    q = shlex.quote
    names = " ".join(f"-d {q(name)}" for name in [settings.domain, *settings.extra_domains])
    env = f"REQUESTS_CA_BUNDLE={ACME_CA_FILE} " if settings.acme_ca_file else ""
    return [
        f"{env}certbot certonly --non-interactive --agree-tos --no-eff-email --email {q(settings.admin_email)} "
        f"--server {q(settings.acme_directory)} --webroot --webroot-path {ACME_WEBROOT} "
        f"--cert-name {q(settings.domain)} {names} --key-type ecdsa --elliptic-curve secp256r1 "
        + ("--force-renewal" if force else "--keep-until-expiring"),
        # -n: replace the link itself, not create one inside the directory it points to.
        f"ln -sfn {q(f'{LETSENCRYPT_LIVE}/{settings.domain}')} {TLS_CURRENT}",
        "nginx -t -q && systemctl reload nginx.service",
        # certonly registered the account with admin_email if there was none (an existing one was updated first).
        remember_email(settings),
    ]


def renewal_minute(settings: HostSettings) -> int:
    """A minute of the hour fixed per domain: hosts do not all renew at once, re-runs change nothing."""
    return int(hashlib.sha256(settings.domain.encode()).hexdigest(), 16) % 60


def script_data(acme_ca_file: str | None) -> dict:
    """What the renewal script, the deploy hook and the cron entry are rendered with."""
    return dict(renew_command=RENEW_COMMAND, reload_pending=RELOAD_PENDING, log_tag=LOG_TAG, acme_ca_file=acme_ca_file)


@deploy("tls")
def tls(settings: HostSettings):
    install_missing(["certbot", "openssl"])
    if settings.acme_ca_file:
        files.put(
            name=f"ACME directory's CA {ACME_CA_FILE}",
            src=settings.acme_ca_file,
            dest=ACME_CA_FILE,
            user="root",
            group=platform_of(host).root_group,
            mode="644",
        )

    # Exactly one renewal path: the kit's cron entry. Masked, not only disabled: a package upgrade
    # re-enables a disabled timer. Stopped before the mask: a timer masked while it runs fails
    # ("unit to trigger vanished") and leaves the whole system degraded.
    timer_state = f"readlink {CERTBOT_TIMER_MASK}; systemctl is-failed certbot.timer || true"
    timer = (host.get_fact(Command, timer_state) or "").split()
    if "/dev/null" not in timer:
        server.shell(name="certbot.timer stopped, disabled and masked",
                     commands=["systemctl disable --now certbot.timer", f"ln -sfn /dev/null {CERTBOT_TIMER_MASK}",
                               "systemctl daemon-reload"])
    elif "failed" in timer:
        server.shell(name="certbot.timer's failed state cleared (masked while running by an earlier deploy)",
                     commands=["systemctl reset-failed certbot.timer"])

    data = script_data(acme_ca_file=ACME_CA_FILE if settings.acme_ca_file else None)
    template(
        name=f"Renewal script {RENEW_COMMAND}",
        role="tls",
        src="renew-certificates.j2",
        dest=RENEW_COMMAND,
        mode="755",
        **data,
    )
    template(name=f"Deploy hook {DEPLOY_HOOK}", role="tls", src="deploy-hook.j2", dest=DEPLOY_HOOK, mode="755", **data)
    template(
        name=f"Renewal cron entry {CRON_FILE}",
        role="tls",
        src="cron.j2",
        dest=CRON_FILE,
        mode="644",
        minute=renewal_minute(settings),
        hours="3,15",
        job=JOB_RUNNER,
        job_name=JOB_NAME,
        **data,
    )

    # An account made with an earlier admin_email: tell the ACME server the new one (no new account).
    account = host.get_fact(AcmeAccount, directory=settings.acme_directory, marker=ACCOUNT_EMAIL)
    if account["exists"] and account["email"] != settings.admin_email:
        server.shell(name="ACME account's email updated to admin_email", commands=account_update_commands(settings))

    issued = host.get_fact(IssuedCertificate, cert_name=settings.domain)
    reason = needs_issuance(settings, issued, datetime.datetime.now(datetime.UTC))
    if reason:
        server.shell(
            name="Certificate for domain and extra_domains from the ACME server "
            "(none yet, or they changed, or overdue)",
            # A changed name list, directory or key type would not be re-issued without force.
            commands=issue_commands(settings, force=bool(issued) and not reason.startswith("expires")),
        )
