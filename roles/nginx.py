"""Role nginx: the host's only public face, TLS in front of the gateway on loopback.

The kit owns /etc/nginx/nginx.conf (Mozilla intermediate TLS for every server, the JSON access
log, rate limits) and its servers in /etc/nginx/openclaw-kit/. A new configuration is rendered to
a candidate directory and checked with `nginx -t -c <candidate>/nginx.conf`, together with what
else is live (conf.d/, sites-enabled/), before it replaces the live files; nginx reloads only
after that. A configuration nginx rejects, a missing certificate included, fails the deploy with
nginx's message, and the running nginx keeps serving the old one. Until the tls role has issued a
certificate, a self-signed bootstrap one lets nginx start and answer ACME challenges on port 80.

nginx.conf is a conffile of nginx-common: should a later package ship a changed one,
unattended-upgrades holds nginx back (it would prompt) unless apt's DPkg::Options has
--force-confold. Debian's own file allows TLS 1.0 and 1.1 http-wide, which is why the kit owns it.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, Link, Sha256File
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from openclaw_kit.packages import install_missing
from openclaw_kit.secrets import Secret, private_file
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render

ETC = "/etc/nginx"
LIVE_DIR = f"{ETC}/openclaw-kit"  # the kit's servers
CANDIDATE_DIR = f"{ETC}/openclaw-kit.candidate"  # nginx.conf + openclaw-kit/, checked before promotion
INCLUDE_PATTERN = "openclaw-kit/*.conf"  # relative: nginx resolves it against nginx.conf's directory
DEFAULT_SITE = f"{ETC}/sites-enabled/default"
SERVERS = {"default-server.conf": "default-server.conf.j2", "site.conf": "site.conf.j2"}
PID = "/run/nginx.pid"  # as in Debian's nginx.service (PIDFile=)
LOG_DIR = "/var/log/nginx"
ACCESS_LOG_NAME = "openclaw-kit-access.log"  # in LOG_DIR; *.log: Debian's logrotate rotates it
ACME_WEBROOT = "/var/www/acme"
HTTP_LISTEN = ("80", "[::]:80")
HTTPS_LISTEN = ("443", "[::]:443")
# nginx serves whatever `current` points at: the certificate certbot issued (its live directory,
# which renewals update in place) or, until there is one, a self-signed bootstrap pair. Flipping
# one link (role tls, after issuance) never changes nginx's configuration.
TLS_DIR = "/etc/ssl/openclaw-kit"
BOOTSTRAP_DIR = f"{TLS_DIR}/bootstrap"
CURRENT = f"{TLS_DIR}/current"
CERTIFICATE = f"{CURRENT}/fullchain.pem"
CERTIFICATE_KEY = f"{CURRENT}/privkey.pem"
LETSENCRYPT_LIVE = "/etc/letsencrypt/live"  # certbot's: live/<cert-name>/{fullchain,privkey}.pem
# 30 days: long enough for the first issuance to be retried, short enough that a forgotten one
# does not pass for a real one.
BOOTSTRAP_DAYS = 30
# The gateway's webhook routes at their defaults in OpenClaw's docs (2026.9.6): hooks.path
# (/hooks), Slack in HTTP mode (/slack/events), Google Chat (/googlechat), LINE (/line/webhook),
# Feishu (/feishu/events), Nextcloud Talk (/nextcloud-talk-webhook), Synology Chat
# (/webhook/synology), SMS (/webhooks/sms), the webhooks plugin (/plugins/webhooks/<name>).
# Not here: the webhook listeners of Telegram (127.0.0.1:8787) and Microsoft Teams (:3978) are
# ports of their own, not the gateway's; the kit runs Telegram by long polling (no inbound route).
WEBHOOK_PREFIXES = (
    "hooks", "slack/events", "googlechat", "line", "feishu/events", "nextcloud-talk-webhook",
    "webhook", "webhooks", "plugins/webhooks",
)
REJECTED = "nginx rejected the new configuration (its message is above); the running nginx keeps the old one"


@deploy("nginx")
def nginx(settings: HostSettings):
    install_missing(["nginx"])
    files.directory(name=f"ACME webroot {ACME_WEBROOT}", path=ACME_WEBROOT, user="root", group="root", mode="755")
    # Debian's default site would claim default_server on port 80 too.
    default_op = files.link(name=f"No distro default site {DEFAULT_SITE}", path=DEFAULT_SITE, present=False)

    # The bootstrap pair always exists: nginx can start (and serve ACME challenges) before the
    # first issuance, and falls back to it should the issued certificate ever be removed.
    bootstrap_ops = []
    if not (host.get_fact(File, path=f"{BOOTSTRAP_DIR}/fullchain.pem") and host.get_fact(File, path=f"{BOOTSTRAP_DIR}/privkey.pem")):
        cert_pem, key_pem = bootstrap_certificate(settings)
        files.directory(name=f"Directory {BOOTSTRAP_DIR}", path=BOOTSTRAP_DIR, user="root", group="root", mode="755")
        bootstrap_ops = [
            private_file(name=f"Self-signed bootstrap key {BOOTSTRAP_DIR}/privkey.pem", path=f"{BOOTSTRAP_DIR}/privkey.pem",
                         content=Secret("bootstrap key", key_pem.decode()), user="root", group="root",
                         private_dir=f"/tmp/openclaw-kit-{host.data.get('ssh_user') or 'root'}"),
            files.put(name=f"Self-signed bootstrap certificate {BOOTSTRAP_DIR}/fullchain.pem", src=io.BytesIO(cert_pem),
                      dest=f"{BOOTSTRAP_DIR}/fullchain.pem", user="root", group="root", mode="644"),
        ]
    issued = f"{LETSENCRYPT_LIVE}/{settings.domain}"
    link_op = files.link(
        name=f"nginx's certificate {CURRENT}", path=CURRENT,
        # certbot's live files are links into its archive.
        target=issued if host.get_fact(Link, path=f"{issued}/fullchain.pem") else BOOTSTRAP_DIR,
    )
    certificate, certificate_key = CERTIFICATE, CERTIFICATE_KEY

    # The candidate: rendered here, checked by nginx on the host, then promoted as a whole.
    desired = config_files(settings, certificate, certificate_key)
    files.directory(name=f"Candidate directory {CANDIDATE_DIR}", path=f"{CANDIDATE_DIR}/openclaw-kit", user="root", group="root", mode="755")
    for relative, content in desired.items():
        files.put(name=f"Candidate {CANDIDATE_DIR}/{relative}", src=io.StringIO(content), dest=f"{CANDIDATE_DIR}/{relative}",
                  user="root", group="root", mode="644", create_remote_dir=False)  # its directory was made just above
    # Decided on the live files, not on the candidate's upload: a candidate nginx rejected last
    # time (its certificate missing, say) is still the one to check and promote on the next run.
    activate_op = None
    if any(host.get_fact(Sha256File, path=f"{ETC}/{relative}") != _sha256(content) for relative, content in desired.items()):
        activate_op = server.shell(
            name="Check the candidate nginx configuration with nginx -t, then make it live",
            commands=activation_commands(list(desired)),
        )

    # The live configuration is checked once more before the reload (the default site or the
    # certificate may be what changed): a reload never loads a configuration nginx has not passed.
    server.shell(
        name="Reload nginx for its new configuration",
        commands=[f"nginx -t -q || {{ echo {shlex.quote(REJECTED)} >&2; exit 1; }}", "systemctl reload-or-restart nginx.service"],
        _if=any_changed(*[op for op in (default_op, *bootstrap_ops, link_op, activate_op) if op is not None]),
    )
    systemd.service(name="nginx enabled and running", service="nginx.service", running=True, enabled=True)


def config_files(settings: HostSettings, certificate: str, certificate_key: str, *, etc: str = ETC, log_dir: str = LOG_DIR,
                 pid: str = PID, acme_webroot: str = ACME_WEBROOT, http_listen=HTTP_LISTEN, https_listen=HTTPS_LISTEN) -> dict[str, str]:
    """The kit's nginx files by path relative to /etc/nginx (the keyword arguments: for tests only)."""
    data = dict(settings=settings, certificate=certificate, certificate_key=certificate_key, etc=etc, log_dir=log_dir, pid=pid,
                access_log=f"{log_dir}/{ACCESS_LOG_NAME}", acme_webroot=acme_webroot, http_listen=list(http_listen),
                https_listen=list(https_listen), live_dir=f"{etc}/openclaw-kit", candidate_dir=f"{etc}/openclaw-kit.candidate",
                include_pattern=INCLUDE_PATTERN, webhook_prefixes=WEBHOOK_PREFIXES)
    rendered = {"nginx.conf": render("nginx", "nginx.conf.j2", **data)}
    rendered.update({f"openclaw-kit/{name}": render("nginx", src, **data) for name, src in SERVERS.items()})
    return rendered


def activation_commands(relatives: list[str], etc: str = ETC) -> list[str]:
    """
    Shell commands that check the candidate with `nginx -t` and only then replace the live files.

    The candidate directory mirrors /etc/nginx: the kit's nginx.conf and openclaw-kit/ as
    candidates, every other entry a symlink to the live one, so that a relative include in an
    admin's own file (`include snippets/x.conf;`) resolves as it does live.
    """
    live, candidate = f"{etc}/openclaw-kit", f"{etc}/openclaw-kit.candidate"
    q = shlex.quote
    keep = " ".join(f"! -name {q(relative.rsplit('/', 1)[1])}" for relative in relatives if relative.startswith("openclaw-kit/"))
    return [
        # Leftovers of an earlier version of the kit must not be promoted with the rest.
        f"find {q(candidate)}/openclaw-kit -mindepth 1 -maxdepth 1 {keep} -exec rm -rf {{}} +",
        f"find {q(candidate)} -mindepth 1 -maxdepth 1 -type l -delete",
        f"for entry in {q(etc)}/*; do case ${{entry##*/}} in nginx.conf|openclaw-kit|openclaw-kit.*) ;; "
        f"*) ln -s \"$entry\" {q(candidate)}/ ;; esac; done",
        f"nginx -t -q -c {q(candidate)}/nginx.conf || {{ echo {q(REJECTED)} >&2; exit 1; }}",
        # Promoted together; nginx reads none of it before the reload.
        f"rm -rf {q(live)}.new {q(live)}.old && cp -a {q(candidate)}/openclaw-kit {q(live)}.new && "
        f"cp {q(candidate)}/nginx.conf {q(etc)}/nginx.conf.openclaw-kit-new && "
        f"{{ [ ! -e {q(live)} ] || mv {q(live)} {q(live)}.old; }} && mv {q(live)}.new {q(live)} && "
        f"mv -f {q(etc)}/nginx.conf.openclaw-kit-new {q(etc)}/nginx.conf && rm -rf {q(live)}.old",
    ]


def bootstrap_certificate(settings: HostSettings, days: int = BOOTSTRAP_DAYS) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 certificate for the domain and extra_domains: (certificate PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, settings.domain)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in [settings.domain, *settings.extra_domains]]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def _sha256(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()
