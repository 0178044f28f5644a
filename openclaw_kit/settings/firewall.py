"""Settings of role firewall (roles/firewall/): who may reach SSH, the interfaces, egress."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from openclaw_kit.settings.rules import Cidr, Interface, Port, Strict


class FirewallSettings(Strict):
    admin_cidrs: Annotated[list[Cidr], Field(min_length=1)]
    # More networks that may reach SSH (a bastion range, or 0.0.0.0/0); unlike admin_cidrs,
    # fail2ban bans their addresses after failed logins.
    ssh_cidrs: list[Cidr] = []
    sshd_port: Port = 22
    public_interface: Interface | None = None
    private_interface: Interface | None = None
    private_cidrs: list[Cidr] = []
    private_allowed_ports: list[Port] = []
    # open: any outgoing connection; restricted: only DNS, NTP, DHCP, HTTP(S), the proxy's port and
    # egress_allowed_ports.
    egress: Literal["open", "restricted"] = "open"
    egress_allowed_ports: list[Port] = []
