"""Settings of role base (roles/base.py): the host itself, its package downloads and sshd."""

from __future__ import annotations

from typing import Literal

from pydantic import ValidationInfo, model_validator

from openclaw_kit.settings.rules import Account, ClockTime, FieldError, Hostname, PemFile, ProxyUrl, Strict


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
