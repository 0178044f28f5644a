"""Role firewall: one table of the kit's own, applied atomically, lockout-proof.

The ruleset is rendered from settings into one file holding the kit's whole table; other tables
(container runtimes, a hand-made one) are never touched. Two guards keep the admin in: before any
change the deploy refuses when its own SSH connection would not be allowed by the new rules, and
a new ruleset is loaded with an automatic rollback that only a NEW SSH connection from the
controller disarms (openclaw_kit.ssh_confirm). What the rules allow is policy.py's, the same everywhere;
the mechanism is the platform's: nftables.py on Linux, pf.py on macOS.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol, runtime_checkable

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.connectors.ssh import SSHConnector

from openclaw_kit.errors import ControllerError
from openclaw_kit.platform import platform_of
from openclaw_kit.settings import HostSettings
from roles.firewall import nftables, pf


@runtime_checkable
class FirewallBackend(Protocol):
    """What a firewall's backend module provides: the policy (policy.py) applied with its mechanism."""

    def apply(self, settings: HostSettings) -> None: ...


# By the platform table's firewall.
BACKENDS: dict[str, FirewallBackend] = {"nftables": nftables, "pf": pf}


@deploy("firewall")
def firewall(settings: HostSettings):
    refuse_lockout(settings)
    BACKENDS[platform_of(host).firewall].apply(settings)


# --- lockout guard 1: refuse rules that would not admit this very deploy ---------------------------


class SshConnection(FactBase):
    """(client address, server address, server port) of the deploy's own SSH connection, from
    $SSH_CONNECTION ("client port server port"); None without one."""

    def command(self) -> str:
        return 'echo "${SSH_CONNECTION:-}"'

    def process(self, output) -> tuple[str, str, int] | None:
        words = " ".join(output).split()
        if len(words) != 4 or not words[3].isdigit():
            return None
        return words[0], words[2], int(words[3])


def ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, an IPv4-mapped IPv6 one as IPv4; None when it is not an IP address."""
    try:
        found = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return None
    return found.ipv4_mapped if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped else found


def lockout_problem(settings: HostSettings, connection: tuple[str, str, int] | None) -> str | None:
    """Why the new firewall would cut this deploy's way in (one line), or None."""
    if connection is None:
        return ("cannot tell which address this deploy's SSH connection comes from ($SSH_CONNECTION is empty), "
                "so the firewall cannot be shown not to lock it out")
    address, server_address, port = connection
    client, server = ip(address), ip(server_address)
    if client is None or server is None:
        return f"$SSH_CONNECTION names {address!r} and {server_address!r}, not IP addresses"
    # The mesh (roles/wireguard.py): management: private needs this deploy to come in over it.
    if settings.management == "private" and not over_mesh(settings, client, server):
        return (f"management: private closes SSH on the public side, but this deploy connects from {client} to "
                f"{server}, not over the mesh (from inside {settings.private_network.cidr} to this host's mesh address "
                f"{settings.private_network.address}): it would lock itself out. Deploy the mesh with "
                "management: public first, then connect over the mesh (inventory addresses in the mesh) and switch "
                "(docs/wireguard.md)")
    admin = any(client in ipaddress.ip_network(cidr) for cidr in settings.admin_cidrs)
    if not admin and not over_mesh(settings, client, server):
        return (f"this deploy connects from {client}, which is not in admin_cidrs = {settings.admin_cidrs}: "
                f"the firewall would lock it out (add {client} to admin_cidrs, or deploy from an admin network)")
    if port != settings.sshd_port:
        return (f"this deploy connects to SSH port {port}, but sshd_port = {settings.sshd_port} is the only SSH port "
                "the firewall opens: it would lock the deploy out")
    return None


def over_mesh(settings: HostSettings, client, server) -> bool:
    """The connection arrives over the WireGuard mesh, whose zone in the ruleset admits SSH: from an
    address inside the mesh to this host's own mesh address. A mesh-range client that reaches a public
    address (spoofed, or routed some other way) comes in on the public side, which management: private
    closes."""
    mesh = settings.private_network
    return (mesh is not None and client in ipaddress.ip_network(mesh.cidr)
            and server == ipaddress.ip_address(mesh.address))


def refuse_lockout(settings: HostSettings) -> None:
    # Runs while pyinfra prepares every host, before anything executes: one refusal, zero changes.
    if not issubclass(host.connector_cls, SSHConnector):
        return
    # Without sudo: sudo's env_reset drops SSH_CONNECTION.
    problem = lockout_problem(settings, host.get_fact(SshConnection, _sudo=False))
    if problem:
        raise ControllerError([f"host {host.name}: admin_cidrs: {problem}"])
