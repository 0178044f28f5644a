"""Role fail2ban: bans from the sshd journal and the nginx access log, into the kit's nftables sets.

The kit owns four files under /etc/fail2ban (a jail.d file, an action and two filters); Debian's
own files are left as shipped. Bans go into the sets `banned_v4`/`banned_v6` of the firewall
role's table (fail2ban makes no tables of its own), the admin networks are never banned. New
files are rendered to a candidate directory and checked with `fail2ban-client -t` against a copy
of /etc/fail2ban with the candidate in place; only a configuration that passes replaces the live
files, and fail2ban reloads only then. A rejected one fails the deploy with fail2ban's message,
and the running fail2ban keeps its configuration.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server, systemd

from openclaw_kit.layout import KIT_STATE_DIR, NFT_TABLE, NGINX_ACCESS_LOG_NAME, NGINX_LOG_DIR
from openclaw_kit.operations import (
    check_then_promote_commands,
    checked_config,
    promote_files_command,
    restart_in_sandbox_commands,
    sandbox_dropin,
)
from openclaw_kit.packages import install_missing
from openclaw_kit.platform import platform_of
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render, render_command, template

ETC = "/etc/fail2ban"
CANDIDATE_DIR = f"{KIT_STATE_DIR}/fail2ban/candidate"  # the kit's files, mirroring ETC, before the check
SERVICE = "fail2ban.service"
ACTION = "openclaw-kit-nftables"
JAIL_FILE = "jail.d/openclaw-kit.conf"
NGINX_ACCESS_LOG = f"{NGINX_LOG_DIR}/{NGINX_ACCESS_LOG_NAME}"  # what the nginx jails read
# python3-systemd: the sshd jail reads the journal.
PACKAGES = ["fail2ban", "python3-systemd"]
NGINX_JAILS = [
    # A Control UI page load can itself run into a few 429s; a flood brings hundreds: 4x the retries.
    {"name": "openclaw-kit-nginx-limit", "statuses": ["429"], "maxretry_factor": 4,
     "why": "Requests nginx refused with 429: over the rate (limit_req) or connection (limit_conn) limits."},
    {"name": "openclaw-kit-nginx-auth", "statuses": ["401", "403"],
     "why": "Requests refused with 401 or 403: guessing tokens, or probing from a public address what only "
            "operators may reach."},
]
# Restart, not reload, while the running sshd jail does not ban through the kit's action yet (not
# running on a fresh Debian 12; Debian's own nftables action on Debian 13 and Ubuntu 24.04): a reload
# that changes a jail's action leaves the jail with no action at all (fail2ban 1.0.2 and 1.1).
# A fail2ban still starting (just installed, or just restarted) cannot be stopped by its ExecStop
# (`fail2ban-client stop`: no socket yet), and then ignores SIGTERM for 90 s: wait until it answers.
WAIT_UNTIL_ANSWERING = (
    "if systemctl is-active --quiet fail2ban.service; then "
    "for _ in $(seq 60); do fail2ban-client ping >/dev/null 2>&1 && break; sleep 1; done; fi"
)
RELOAD = (
    "if systemctl is-active --quiet fail2ban.service"
    f" && fail2ban-client get sshd actions 2>/dev/null | grep -qx {ACTION}; then "
    "systemctl reload fail2ban.service; else systemctl restart fail2ban.service; fi"
)
REJECTED = "fail2ban rejected the new configuration (its message is above); the running fail2ban keeps the old one"


@deploy("fail2ban")
def fail2ban(settings: HostSettings):
    # On Debian 12 the packaged fail2ban does not start with its own defaults (its sshd jail reads a
    # missing /var/log/auth.log); on Debian 13 and Ubuntu 24.04 it does, banning through nftables
    # tables of its own until the kit's files are live (the restart below removes them).
    install_missing(PACKAGES)

    sandbox_op = template(name=f"fail2ban's systemd sandbox {sandbox_dropin(SERVICE)}", role="fail2ban",
                          src="systemd-sandbox.conf.j2", dest=sandbox_dropin(SERVICE))
    # Decided on the live files, so a candidate fail2ban rejected last time is checked again, and a
    # live file edited by hand is put back.
    activate_op = checked_config(
        name="Check the candidate fail2ban configuration with fail2ban-client -t, then make it live",
        files=config_files(settings),
        live_dir=ETC,
        candidate_dir=CANDIDATE_DIR,
        check=check_command(),
        rejected=REJECTED,
        group=platform_of(host).root_group,
    )
    # One restart when the sandbox changed (it reads the new configuration too), else a reload: two in a
    # row catch fail2ban still starting.
    server.shell(name="Restart fail2ban in its new sandbox",
                 commands=[WAIT_UNTIL_ANSWERING, *restart_in_sandbox_commands(SERVICE)], _if=sandbox_op.did_change)
    server.shell(
        name="Reload fail2ban for its new configuration",
        commands=[WAIT_UNTIL_ANSWERING, RELOAD],
        _if=lambda: activate_op.did_change() and not sandbox_op.did_change(),
    )
    systemd.service(name="fail2ban enabled and running", service=SERVICE, running=True, enabled=True)


def config_files(settings: HostSettings, access_log: str = NGINX_ACCESS_LOG) -> dict[str, str]:
    """The kit's fail2ban files by path relative to /etc/fail2ban."""
    rendered = {
        JAIL_FILE: render(
            "fail2ban",
            "jail.conf.j2",
            ignoreip=["127.0.0.0/8", "::1", *settings.admin_cidrs],
            bantime=settings.fail2ban_bantime_seconds,
            findtime=settings.fail2ban_findtime_seconds,
            maxretry=settings.fail2ban_maxretry,
            action=ACTION,
            nginx_jails=NGINX_JAILS,
            access_log=access_log,
        ),
        f"action.d/{ACTION}.conf": render(
            "fail2ban", "action.conf.j2", table=NFT_TABLE, set_v4="banned_v4", set_v6="banned_v6"
        ),
    }
    for jail in NGINX_JAILS:
        rendered[f"filter.d/{jail['name']}.conf"] = render(
            "fail2ban", "filter-nginx.conf.j2", statuses=jail["statuses"], why=jail["why"]
        )
    return rendered


def check_command(etc: str = ETC, candidate: str = CANDIDATE_DIR) -> str:
    """Shell that checks a scratch copy of `etc` with the candidate files in it, touching nothing live."""
    return render_command("fail2ban", "check-candidate.sh.j2", etc=etc, candidate=candidate,
                          scratch=f"{candidate}.check")


def activation_commands(relatives: list[str], etc: str = ETC, candidate: str = CANDIDATE_DIR) -> list[str]:
    """What checked_config runs on the host once the candidate is written (for the tests)."""
    promote = promote_files_command(relatives, etc, candidate)
    return check_then_promote_commands(check_command(etc, candidate), REJECTED, promote)
