"""Role base's sshd drop-in, the same on every platform: rendered from settings, checked with
`sshd -t`/`sshd -T` on the host as a candidate, put in place only when sshd accepts it."""

from __future__ import annotations

import shlex

from pyinfra import host

from openclaw_kit.layout import SSHD_CONFIG, SSHD_DROPIN_DIR
from openclaw_kit.operations import checked_config, promote_files_command
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render

# sshd_config includes sshd_config.d/* first and the first value read wins: sort first.
SSHD_DROPIN_NAME = "00-openclaw-kit.conf"
SSHD_DROPIN = f"{SSHD_DROPIN_DIR}/{SSHD_DROPIN_NAME}"
# Outside sshd_config.d, so sshd never reads it: the drop-in as uploaded, until it is checked.
SSHD_CANDIDATE = "/etc/ssh/openclaw-kit-sshd.candidate"
ISSUE_NET = "/etc/issue.net"


def sshd_dropin(settings: HostSettings, src: str = "sshd.conf.j2") -> str:
    return render(
        "base",
        src,
        port=settings.sshd_port,
        permit_root_login=settings.sshd_permit_root_login,
        allow_users=settings.sshd_allow_users,
        allow_groups=settings.sshd_allow_groups,
        tcp_forwarding=settings.sshd_tcp_forwarding,
        max_sessions=settings.sshd_max_sessions,
        client_alive_count_max=settings.sshd_client_alive_count_max,
        banner=ISSUE_NET if settings.login_banner else "none",
    )


def sshd_check_script(
    *,
    port: int,
    ssh_user: str | None = None,
    allow_groups: list[str] = (),
    sshd: str = "/usr/sbin/sshd",
    dropin_dir: str = SSHD_DROPIN_DIR,
    main_config: str = SSHD_CONFIG,
) -> str:
    """
    Shell that checks the candidate drop-in with `sshd -t` and `sshd -T` on a scratch copy of the
    configuration: that sshd accepts it, listens on `port` only, and that the drop-in is in effect.

    Before that, that the deploy's user stays allowed in (sshd_allow_groups) and that no other
    drop-in sorts before the kit's. A rejected candidate is removed; the live drop-in never changes.
    """
    return render(
        "base",
        "sshd-check.sh.j2",
        candidate_dir=SSHD_CANDIDATE,
        dropin_dir=dropin_dir,
        dropin_name=SSHD_DROPIN_NAME,
        main_config=main_config,
        sshd=sshd,
        port=int(port),
        ssh_user=ssh_user or "root",
        allow_groups=list(allow_groups),
    )


def checked_dropin(settings: HostSettings, platform, src: str):
    q = shlex.quote
    return checked_config(
        name=f"sshd drop-in: check it with sshd -t, then put it in place at {SSHD_DROPIN}",
        files={SSHD_DROPIN_NAME: sshd_dropin(settings, src)},
        live_dir=SSHD_DROPIN_DIR,
        candidate_dir=SSHD_CANDIDATE,
        check=sshd_check_script(
            port=settings.sshd_port,
            ssh_user=host.data.get("ssh_user"),
            allow_groups=settings.sshd_allow_groups,
            sshd=platform.sshd,
        ),
        rejected="sshd rejected the new drop-in (its message is above); the running sshd keeps the old one",
        promote=(
            f"install -d -m 755 -o root -g {platform.root_group} {SSHD_DROPIN_DIR} && "
            f"{promote_files_command([SSHD_DROPIN_NAME], SSHD_DROPIN_DIR, SSHD_CANDIDATE)} && "
            f"rm -rf {q(SSHD_CANDIDATE)}"
        ),
        group=platform.root_group,
    )
