"""A host's settings: every role's settings in one model, and the rules that span roles.

The inventory (host data merged over group data, as pyinfra does) holds the kit's settings as
top-level keys next to pyinfra's own connection keys (ssh_user, ssh_key, ...). Each role's keys,
defaults and rules live in its own module here (base.py for role base, ...), and only there; each
model names its role (ROLE), which is what decides the platforms that honour its settings
(platforms.py). The models are listed in the order deploy.py runs their roles, last first: that
order is the fields' (and docs/settings.md's).
"""

from __future__ import annotations

from pydantic import model_validator

from openclaw_kit.settings.audit import AuditSettings
from openclaw_kit.settings.backup import BackupSettings
from openclaw_kit.settings.base import BaseSettings
from openclaw_kit.settings.fail2ban import Fail2banSettings
from openclaw_kit.settings.firewall import FirewallSettings
from openclaw_kit.settings.logs import LogsSettings
from openclaw_kit.settings.monitoring import MonitoringSettings
from openclaw_kit.settings.nginx import NginxSettings
from openclaw_kit.settings.openclaw import OpenclawSettings
from openclaw_kit.settings.rules import FieldError
from openclaw_kit.settings.tls import TlsSettings
from openclaw_kit.settings.wireguard import WireguardSettings


class HostSettings(
    TlsSettings,
    MonitoringSettings,
    AuditSettings,
    BackupSettings,
    LogsSettings,
    Fail2banSettings,
    NginxSettings,
    OpenclawSettings,
    WireguardSettings,
    FirewallSettings,
    BaseSettings,
):
    """Every setting of a host; the validators below are the rules that involve more than one role."""

    @model_validator(mode="after")
    def _ports(self):
        taken = {self.sshd_port: "sshd_port", 80: "HTTP (nginx)", 443: "HTTPS (nginx)"}
        if self.gateway_port in taken:
            raise FieldError(
                "gateway_port",
                self.gateway_port,
                f"clashes with {taken[self.gateway_port]} on port {self.gateway_port}; "
                "every service needs its own port",
            )
        if self.sshd_port in (80, 443):
            raise FieldError(
                "sshd_port", self.sshd_port, "clashes with nginx on the same port; every service needs its own port"
            )
        if self.private_interface and not self.private_cidrs:
            raise FieldError("private_cidrs", [], "a private_interface needs the private_cidrs that live behind it")
        return self

    @model_validator(mode="after")
    def _firewall(self):
        if self.public_interface and self.public_interface == self.private_interface:
            raise FieldError(
                "private_interface",
                self.private_interface,
                "is also the public_interface; the private network needs its own interface",
            )
        if self.private_allowed_ports and not self.private_cidrs:
            raise FieldError(
                "private_allowed_ports",
                self.private_allowed_ports,
                "needs private_cidrs naming who may reach these ports",
            )
        if self.gateway_port in self.private_allowed_ports:
            raise FieldError(
                "private_allowed_ports",
                self.private_allowed_ports,
                f"includes gateway_port {self.gateway_port}; "
                "the gateway is reachable on loopback only (nginx fronts it)",
            )
        if self.egress_allowed_ports and self.egress != "restricted":
            raise FieldError(
                "egress_allowed_ports",
                self.egress_allowed_ports,
                "only applies with egress: restricted (egress is open: every port is allowed already)",
            )
        return self
