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

import io
import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, Link
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from openclaw_kit.certificates import server_certificate
from openclaw_kit.layout import ACME_WEBROOT, LETSENCRYPT_LIVE, TLS_DIR
from openclaw_kit.layout import NGINX_ACCESS_LOG_NAME as ACCESS_LOG_NAME
from openclaw_kit.layout import NGINX_LOG_DIR as LOG_DIR
from openclaw_kit.layout import NGINX_PID as PID
from openclaw_kit.layout import TLS_CURRENT as CURRENT
from openclaw_kit.operations import (
    check_then_promote_commands,
    checked_config,
    restart_in_sandbox_commands,
    sandbox_dropin,
)
from openclaw_kit.packages import install_missing
from openclaw_kit.platform import platform_of
from openclaw_kit.secrets import Secret, private_file
from openclaw_kit.settings import HostSettings
from openclaw_kit.settings.nginx import WEBHOOK_PATHS
from openclaw_kit.templates import render, render_command, template

ETC = "/etc/nginx"
LIVE_DIR = f"{ETC}/openclaw-kit"  # the kit's servers
CANDIDATE_DIR = f"{ETC}/openclaw-kit.candidate"  # nginx.conf + openclaw-kit/, checked before promotion
INCLUDE_PATTERN = "openclaw-kit/*.conf"  # relative: nginx resolves it against nginx.conf's directory
DEFAULT_SITE = f"{ETC}/sites-enabled/default"
SERVERS = {"default-server.conf": "default-server.conf.j2", "site.conf": "site.conf.j2"}
SERVICE = "nginx.service"
HTTP_LISTEN = ("80", "[::]:80")
HTTPS_LISTEN = ("443", "[::]:443")
# nginx serves whatever `current` points at: the certificate certbot issued (its live directory,
# which renewals update in place) or, until there is one, a self-signed bootstrap pair. Flipping
# one link (role tls, after issuance) never changes nginx's configuration.
BOOTSTRAP_DIR = f"{TLS_DIR}/bootstrap"
CERTIFICATE = f"{CURRENT}/fullchain.pem"
CERTIFICATE_KEY = f"{CURRENT}/privkey.pem"
# 30 days: long enough for the first issuance to be retried, short enough that a forgotten one
# does not pass for a real one.
BOOTSTRAP_DAYS = 30
# Operators reach the Control UI, its WebSocket and the HTTP API from these addresses only (plus
# private_cidrs, and admin_cidrs with the opt-in): loopback is an SSH tunnel or the host itself.
LOOPBACK = ("127.0.0.1", "::1")
REJECTED = "nginx rejected the new configuration (its message is above); the running nginx keeps the old one"


@deploy("nginx")
def nginx(settings: HostSettings):
    platform = platform_of(host)
    install_missing(["nginx"])
    files.directory(
        name=f"ACME webroot {ACME_WEBROOT}", path=ACME_WEBROOT, user="root", group=platform.root_group, mode="755"
    )
    # Debian's default site would claim default_server on port 80 too.
    default_op = files.link(name=f"No distro default site {DEFAULT_SITE}", path=DEFAULT_SITE, present=False)

    # The bootstrap pair always exists: nginx can start (and serve ACME challenges) before the
    # first issuance, and falls back to it should the issued certificate ever be removed.
    bootstrap_ops = []
    if not (
        host.get_fact(File, path=f"{BOOTSTRAP_DIR}/fullchain.pem")
        and host.get_fact(File, path=f"{BOOTSTRAP_DIR}/privkey.pem")
    ):
        cert_pem, key_pem = bootstrap_certificate(settings)
        files.directory(
            name=f"Directory {BOOTSTRAP_DIR}", path=BOOTSTRAP_DIR, user="root", group=platform.root_group, mode="755"
        )
        bootstrap_ops = [
            private_file(
                name=f"Self-signed bootstrap key {BOOTSTRAP_DIR}/privkey.pem",
                path=f"{BOOTSTRAP_DIR}/privkey.pem",
                content=Secret("bootstrap key", key_pem.decode()),
                user="root",
                group=platform.root_group,
                private_dir=f"/tmp/openclaw-kit-{host.data.get('ssh_user') or 'root'}",
            ),
            files.put(
                name=f"Self-signed bootstrap certificate {BOOTSTRAP_DIR}/fullchain.pem",
                src=io.BytesIO(cert_pem),
                dest=f"{BOOTSTRAP_DIR}/fullchain.pem",
                user="root",
                group=platform.root_group,
                mode="644",
            ),
        ]
    issued = f"{LETSENCRYPT_LIVE}/{settings.domain}"
    link_op = files.link(
        name=f"nginx's certificate {CURRENT}",
        path=CURRENT,
        # certbot's live files are links into its archive.
        target=issued if host.get_fact(Link, path=f"{issued}/fullchain.pem") else BOOTSTRAP_DIR,
    )
    certificate, certificate_key = CERTIFICATE, CERTIFICATE_KEY

    # The candidate: rendered here, checked by nginx on the host, then promoted as a whole. Decided
    # on the live files, so a candidate nginx rejected last time (its certificate missing, say) is
    # checked again on the next run.
    desired = config_files(settings, certificate, certificate_key)
    activate_op = checked_config(
        name="Check the candidate nginx configuration with nginx -t, then make it live",
        files=desired,
        live_dir=ETC,
        candidate_dir=CANDIDATE_DIR,
        check=check_command(list(desired)),
        rejected=REJECTED,
        promote=promote_command(),
        group=platform.root_group,
    )

    # The live configuration is checked once more before the reload (the default site or the
    # certificate may be what changed): a reload never loads a configuration nginx has not passed.
    server.shell(
        name="Reload nginx for its new configuration",
        commands=[
            f"nginx -t -q || {{ echo {shlex.quote(REJECTED)} >&2; exit 1; }}",
            "systemctl reload-or-restart nginx.service",
        ],
        _if=any_changed(*[op for op in (default_op, *bootstrap_ops, link_op, activate_op) if op is not None]),
    )
    sandbox_op = template(name=f"nginx's systemd sandbox {sandbox_dropin(SERVICE)}", role="nginx",
                          src="systemd-sandbox.conf.j2", dest=sandbox_dropin(SERVICE))
    server.shell(name="Restart nginx in its new sandbox", commands=restart_in_sandbox_commands(SERVICE),
                 _if=sandbox_op.did_change)
    systemd.service(name="nginx enabled and running", service=SERVICE, running=True, enabled=True)


def config_files(
    settings: HostSettings,
    certificate: str,
    certificate_key: str,
    *,
    etc: str = ETC,
    log_dir: str = LOG_DIR,
    pid: str = PID,
    acme_webroot: str = ACME_WEBROOT,
    http_listen=HTTP_LISTEN,
    https_listen=HTTPS_LISTEN,
) -> dict[str, str]:
    """The kit's nginx files by path relative to /etc/nginx (the keyword arguments: for tests only)."""
    data = dict(settings=settings, certificate=certificate, certificate_key=certificate_key, etc=etc, log_dir=log_dir,
                pid=pid, access_log=f"{log_dir}/{ACCESS_LOG_NAME}", acme_webroot=acme_webroot,
                http_listen=list(http_listen), https_listen=list(https_listen), live_dir=f"{etc}/openclaw-kit",
                candidate_dir=f"{etc}/openclaw-kit.candidate", include_pattern=INCLUDE_PATTERN,
                webhook_paths=[WEBHOOK_PATHS[name] for name in sorted(set(settings.public_webhooks))],
                operator_cidrs=operator_cidrs(settings))
    rendered = {"nginx.conf": render("nginx", "nginx.conf.j2", **data)}
    rendered.update({f"openclaw-kit/{name}": render("nginx", src, **data) for name, src in SERVERS.items()})
    return rendered


def operator_cidrs(settings: HostSettings) -> list[str]:
    """Who gets more than the public webhooks over 443: loopback, the private network, admin_cidrs by opt-in."""
    opted_in = settings.admin_cidrs if settings.dangerously_expose_control_ui_to_admin_cidrs else []
    mesh = [settings.private_network.cidr] if settings.private_network else []  # the WireGuard mesh (role wireguard)
    return list(dict.fromkeys([*LOOPBACK, *settings.private_cidrs, *mesh, *opted_in]))


def check_command(relatives: list[str], etc: str = ETC) -> str:
    """Shell that checks the candidate with `nginx -t`, touching nothing live."""
    keep = [relative.rsplit("/", 1)[1] for relative in relatives if relative.startswith("openclaw-kit/")]
    return render_command("nginx", "check-candidate.sh.j2", etc=etc, candidate=f"{etc}/openclaw-kit.candidate",
                          keep=keep)


def promote_command(etc: str = ETC) -> str:
    """Shell that makes the checked candidate live."""
    return render_command("nginx", "promote-candidate.sh.j2", etc=etc, live=f"{etc}/openclaw-kit",
                          candidate=f"{etc}/openclaw-kit.candidate")


def activation_commands(relatives: list[str], etc: str = ETC) -> list[str]:
    """What checked_config runs on the host once the candidate is written (for the tests)."""
    return check_then_promote_commands(check_command(relatives, etc), REJECTED, promote_command(etc))


def bootstrap_certificate(settings: HostSettings, days: int = BOOTSTRAP_DAYS) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 certificate for the domain and extra_domains: (certificate PEM, key PEM)."""
    return server_certificate([settings.domain, *settings.extra_domains], days)
