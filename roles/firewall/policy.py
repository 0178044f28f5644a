"""The firewall's policy, the same on every platform: what the rules allow, from settings (each
backend writes it in its own syntax: nftables.py a table, pf.py an anchor), and how a new ruleset
goes live (loaded on probation, kept only when confirmed over a new SSH connection).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.operations import python, server

from openclaw_kit.settings import HostSettings
from openclaw_kit.ssh_confirm import confirm_over_new_connection

CONFIRM_SECONDS = 45  # the new ruleset's probation: no confirmation by then, and it is rolled back


def ruleset_data(settings: HostSettings) -> dict:
    # SSH: the admin networks (never banned) and ssh_cidrs (fail2ban may ban their addresses).
    ssh = [ipaddress.ip_network(cidr) for cidr in [*settings.admin_cidrs, *settings.ssh_cidrs]]
    private = [ipaddress.ip_network(cidr) for cidr in settings.private_cidrs]
    if settings.public_interface:
        public_match = f'iifname "{settings.public_interface}" '
    elif settings.private_interface:
        public_match = f'iifname != "{settings.private_interface}" '  # public = any interface but the private one
    else:
        public_match = ""
    proxy_port = urlsplit(settings.proxy).port if settings.proxy else None
    return dict(
        gateway_port=settings.gateway_port,
        sshd_port=settings.sshd_port,
        public_match=public_match,
        ssh_v4=collapsed(ssh, 4),
        ssh_v6=collapsed(ssh, 6),
        private_match=f'iifname "{settings.private_interface}" ' if settings.private_interface else "",
        private_v4=[str(net) for net in private if net.version == 4],
        private_v6=[str(net) for net in private if net.version == 6],
        # 443 too: operators reach the Control UI through nginx over the private network (role nginx).
        private_ports=sorted(set(settings.private_allowed_ports) | ({443} if private else set())),
        egress=settings.egress,
        proxy_port=proxy_port if proxy_port not in (80, 443) else None,
        egress_ports=sorted(set(settings.egress_allowed_ports)),
        **mesh_data(settings),
    )


def mesh_data(settings: HostSettings) -> dict:
    """The WireGuard mesh (roles/wireguard.py): its UDP port public, its interface a private zone."""
    mesh = settings.private_network
    if mesh is None:
        return dict(mesh=None, public_ssh=True)
    network = ipaddress.ip_network(mesh.cidr)
    return dict(
        # management: private: no SSH on the public side at all; admins come in over the mesh.
        public_ssh=settings.management == "public",
        mesh=dict(
            port=mesh.port,
            interface=mesh.interface,
            family="ip" if network.version == 4 else "ip6",
            cidr=str(network),
            ports=sorted({settings.sshd_port, 443, *settings.private_allowed_ports}),
        ),
    )


def collapsed(networks: list, version: int) -> list[str]:
    """The networks of one IP version, overlapping and adjacent ones merged.

    nft merges them itself when it loads a set, and then lists a set that no longer reloads to the
    same table (a merged `{ 10.0.0.0/24 }` comes back as a plain match): the fingerprint of the
    table would change on every rollback.
    """
    return [str(net) for net in ipaddress.collapse_addresses(net for net in networks if net.version == version)]


def load_and_confirm(name: str, apply: str, desired: str) -> None:
    """Load `desired` with the apply script's rollback timer armed, then confirm it over a new SSH
    connection (what a firewall that cut SSH could not do), for every firewall backend."""
    server.shell(name=name, commands=[f"{apply} --timeout {CONFIRM_SECONDS} {desired}"])
    if issubclass(host.connector_cls, SSHConnector):
        python.call(
            name="Confirm the firewall over a new SSH connection",
            function=confirm_over_new_connection,
            confirm_command=f"{apply} --confirm",
            probation_seconds=CONFIRM_SECONDS,
        )
    else:
        # local, docker, ...: no SSH connection a firewall could cut.
        server.shell(name="Confirm the firewall", commands=[f"{apply} --confirm"])
