"""Settings of role base (roles/base/): the host itself, its package downloads and sshd."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

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
    ROLE: ClassVar[str] = "base"

    hostname: Hostname | None = Field(None, description="The host's name, a single DNS label; none: left as it is.")
    proxy: ProxyUrl | None = Field(
        None, description="`http(s)://host:port` for package downloads (apt, npm, Node.js); no credentials in it. "
        "The firewall lets its port out with `egress: restricted`.")
    proxy_ca_file: PemFile | None = Field(
        None, description="A PEM file on the controller: the CA of a TLS-inspecting proxy, added to the host's "
        "trust store.")
    sshd_permit_root_login: Literal["prohibit-password", "no"] = Field(
        "prohibit-password", description="`prohibit-password`: root logs in with a key only; `no`: not at all "
        "(needs a non-root `ssh_user`, or the deploy would lock itself out).")
    sshd_allow_users: list[Account] = Field(
        [], description="Plain user names that alone may log in over SSH (`[]`: any user with a key); when set "
        "it must include the deploy's `ssh_user`.")
    sshd_allow_groups: list[Account] = Field(
        [], description="Plain group names whose members alone may log in over SSH; before changing sshd the "
        "deploy checks on the host that `ssh_user` is in one of them.")
    sshd_tcp_forwarding: Literal["no", "local"] = Field(
        "no", description="`no`: no forwarding of any kind; `local`: `ssh -L` only (e.g. to reach the gateway on "
        "loopback). Agent, X11, remote forwarding and tunnels stay off.")
    ipv6_accept_ra: bool = Field(
        False, description="`true` keeps IPv6 router advertisements and SLAAC on, for providers that assign IPv6 "
        "that way.")
    unattended_reboot: bool = Field(
        False, description="`true` lets unattended security upgrades reboot the host when an upgrade needs it, "
        "at `unattended_reboot_time`.")
    unattended_reboot_time: ClockTime = Field("04:00", description="`HH:MM`: when that reboot happens.")
    login_umask: Umask = Field(
        "027", description="Octal umask of login shells (`/etc/profile.d/openclaw-kit-umask.sh`) and new home "
        "directories, whose last digit is 7 (others get nothing): `027`, `077`.")
    core_dumps: bool = Field(
        False, description="`false`: no core dumps from sessions, services or the kernel (they hold whatever the "
        "process held: tokens, keys); `true` leaves them as the system has them.")
    blocked_kernel_modules: list[ModuleName] = Field(
        BLOCKED_MODULES, description="Kernel modules modprobe refuses to load (`[]`: none): network protocols no "
        "gateway uses and storage that arrives by plugging something in (CIS 1.1.1.x, 3.2.x).")
    sshd_max_sessions: Annotated[int, Field(ge=1, le=10)] = Field(
        4, description="Sessions (shells, commands) per SSH connection, 1-10.")
    sshd_client_alive_count_max: Annotated[int, Field(ge=1, le=3)] = Field(
        2, description="Unanswered keepalives (one every 300 s), 1-3, before sshd drops a client.")
    cron_root_only: bool = Field(
        True, description="`/etc/crontab` 0600 and the cron directories 0700, root's (what runs when is nobody "
        "else's business).")
    login_banner: Banner | None = Field(
        None, description="Text (at most 2000 printable characters, line breaks allowed) shown before SSH login, "
        "from `/etc/issue.net`: the legal notice, if the host needs one.")

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
