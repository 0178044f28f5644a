"""Settings of role base (roles/base/): the host itself, its package downloads and sshd."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from openclaw_kit.settings.rules import Account, ClockTime, FieldError, Hostname, PemFile, ProxyUrl, Strict, check

_UMASK = re.compile(r"^0?[0-7][0-7]7$")
_MODULE = re.compile(r"^[a-z0-9_-]{1,64}$")


def _banner(value: str) -> str:
    if not value.strip():
        raise ValueError("must be some text (or leave login_banner out for none)")
    if len(value) > 2000:
        raise ValueError("must be at most 2000 characters")
    if any(ord(char) < 32 and char not in "\n\t" or ord(char) == 127 for char in value):
        raise ValueError("must be printable text (line breaks allowed, no other control characters)")
    return value


# Others get nothing (the last digit 7): 027, 077.
Umask = Annotated[
    str,
    AfterValidator(lambda v: check(_UMASK, v, "must be an octal umask that denies others everything, like 027 or 077")),
]
ModuleName = Annotated[
    str, AfterValidator(lambda v: check(_MODULE, v, "must be a kernel module name like dccp or usb-storage"))
]
Banner = Annotated[str, AfterValidator(_banner)]

# Network protocols no gateway uses (each has had remotely reachable kernel bugs) and storage that
# arrives by plugging something in: CIS Debian benchmark 1.1.1.x and 3.2.x.
BLOCKED_MODULES = ["dccp", "sctp", "rds", "tipc", "usb-storage", "firewire-core", "firewire-sbp2"]


class BaseSettings(Strict):
    hostname: Hostname | None = None
    proxy: ProxyUrl | None = None
    # A PEM bundle on the controller: the CA of a TLS-inspecting proxy, added to the hosts' trust store.
    proxy_ca_file: PemFile | None = None
    # prohibit-password: root logs in with a key only; no: not at all (needs a non-root ssh_user).
    sshd_permit_root_login: Literal["prohibit-password", "no"] = "prohibit-password"
    # When set, only these users (and/or members of these groups) may log in over SSH.
    sshd_allow_users: list[Account] = []
    sshd_allow_groups: list[Account] = []
    # no: no forwarding of any kind; local: `ssh -L` only (e.g. to reach the gateway on loopback).
    sshd_tcp_forwarding: Literal["no", "local"] = "no"
    # Keep accepting IPv6 router advertisements (SLAAC), for providers that assign IPv6 that way.
    ipv6_accept_ra: bool = False
    # Let unattended security upgrades reboot the host when one needs it, at unattended_reboot_time.
    unattended_reboot: bool = False
    unattended_reboot_time: ClockTime = "04:00"
    # Host baseline (CIS): the umask login.defs gives new sessions and home directories.
    login_umask: Umask = "027"
    # false: no core dumps at all (they hold whatever the process held: tokens, keys).
    core_dumps: bool = False
    # Kernel modules modprobe refuses to load.
    blocked_kernel_modules: list[ModuleName] = BLOCKED_MODULES
    # Sessions (shells, commands) per SSH connection, and unanswered keepalives before sshd drops a client.
    sshd_max_sessions: Annotated[int, Field(ge=1, le=10)] = 4
    sshd_client_alive_count_max: Annotated[int, Field(ge=1, le=3)] = 2
    # /etc/crontab and the cron directories readable by root only (what runs when is nobody else's business).
    cron_root_only: bool = True
    # Shown before SSH login (/etc/issue.net, sshd Banner): the legal notice, if the host needs one.
    login_banner: Banner | None = None
    # auditd watching the kit's files, wherever the kernel lets it run (not in containers).
    auditd: bool = True

    @model_validator(mode="after")
    def _sshd_keeps_the_deploy_in(self, info: ValidationInfo):
        # ssh_user is pyinfra's connection key (not a kit setting): validate_hosts passes it in the context.
        ssh_user = (info.context or {}).get("ssh_user")
        if self.sshd_allow_users and ssh_user not in self.sshd_allow_users:
            rule = (f"must include the deploy's ssh_user {ssh_user!r}, or sshd would lock the deploy out" if ssh_user
                    else "needs ssh_user set in the inventory and listed here, or sshd could lock the deploy out")
            raise FieldError("sshd_allow_users", self.sshd_allow_users, rule)
        if self.sshd_permit_root_login == "no" and ssh_user in (None, "root"):
            raise FieldError(
                "sshd_permit_root_login",
                "no",
                f"needs a non-root ssh_user (with sudo); the deploy logs in as {ssh_user or 'an unnamed user'} "
                "and would lock itself out",
            )
        return self
