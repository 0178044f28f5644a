"""Settings of role firewall (roles/firewall/): who may reach SSH, the interfaces, egress."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from openclaw_kit.settings.rules import Cidr, Interface, Port, Strict


class FirewallSettings(Strict):
    ROLE: ClassVar[str] = "firewall"

    admin_cidrs: Annotated[list[Cidr], Field(min_length=1)] = Field(
        description="Networks (CIDR, no host bits set; 1 or more) that may reach SSH; never banned by fail2ban.")
    ssh_cidrs: list[Cidr] = Field(
        [], description="More networks that may reach SSH (a bastion range, or `0.0.0.0/0`); unlike "
        "`admin_cidrs`, fail2ban bans their addresses after failed logins.")
    sshd_port: Port = Field(
        22, description="The SSH port sshd listens on and the firewall opens, 1-65535, not 80 or 443. On macOS "
        "only 22 (launchd's `com.openssh.sshd` socket).")
    public_interface: Interface | None = Field(
        None, description="The interface SSH (from `admin_cidrs` and `ssh_cidrs`), 80 and 443 are open on; not "
        "the `private_interface`. None: any interface but the private one.")
    private_interface: Interface | None = Field(
        None, description="The private network's interface; needs `private_cidrs`.")
    private_cidrs: list[Cidr] = Field(
        [], description="The networks behind the private network; they may reach 443 (operators) and "
        "`private_allowed_ports`.")
    private_allowed_ports: list[Port] = Field(
        [], description="More ports (TCP and UDP) the private network may reach; needs `private_cidrs`, never "
        "`gateway_port`.")
    egress: Literal["open", "restricted"] = Field(
        "open", description="`open`: any outgoing connection; `restricted`: new outgoing connections only for DNS, "
        "NTP, DHCP, HTTP(S), the `proxy`'s port and `egress_allowed_ports`.")
    egress_allowed_ports: list[Port] = Field(
        [], description="More TCP ports allowed out; only with `egress: restricted`.")
