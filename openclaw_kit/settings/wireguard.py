"""Settings of role wireguard (roles/wireguard.py): the mesh, the admins' laptops on it, management.

mesh_problems holds the rules across the inventory (one mesh, unique addresses); inventory.py
calls it once every host's own settings are valid.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from openclaw_kit.settings.rules import _HOSTNAME, Cidr, FieldError, Interface, Port, SecretRef, Strict, check

if TYPE_CHECKING:
    from openclaw_kit.settings.host import HostSettings

SECRET_FIELDS = {"preshared_key"}


def wireguard_key(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) and len(value) == 44 else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError("must be a WireGuard public key: 32 bytes in base64 (44 characters, as `wg pubkey` prints)")
    return value


def ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IP address like 10.99.0.1 (no prefix length)") from None


PeerName = Annotated[
    str, AfterValidator(lambda v: check(_HOSTNAME, v, "must be a single DNS label, like alice-laptop"))
]
WireGuardKey = Annotated[str, AfterValidator(wireguard_key)]
RotationLabel = Annotated[
    str,
    AfterValidator(
        lambda v: check(re.compile(r"^[A-Za-z0-9._:-]{1,64}$"), v, "must be a short label like 2026-12-01 "
                        "(letters, digits, . _ : -; at most 64)")
    ),
]
IpAddress = Annotated[str, AfterValidator(ip_address)]


class PrivateNetwork(Strict):
    cidr: Cidr = Field(description="The mesh's network, the same on every host.")
    address: IpAddress = Field(
        description="This host's address in the mesh: inside `cidr`, unique among hosts and `admin_peers`.")
    port: Port = Field(51820, description="WireGuard's UDP port, the same on every host.")
    interface: Interface = Field("wg0", description="The WireGuard interface, the same on every host.")
    endpoint: str | None = Field(
        None, description="Where the other hosts send this host's WireGuard packets; none: its inventory name.")
    preshared_key: SecretRef | None = Field(
        None, description="Secret reference (`${VAR}`) to one key shared by the whole mesh and the admin peers "
        "(post-quantum resistance on top of the keys), the same on every host.")
    key_rotation: RotationLabel | None = Field(
        None, description="A label (like 2026-12-01): a run that finds another label beside the key (or none) "
        "makes a new key for this host and every peer follows in that run; the same label again changes nothing.")

    @model_validator(mode="after")
    def _address_inside(self):
        network = ipaddress.ip_network(self.cidr)
        if ipaddress.ip_address(self.address) not in network:
            raise FieldError("address", self.address, f"must be inside the mesh cidr {self.cidr}")
        if self.address in (str(network.network_address), str(network.broadcast_address)):
            raise FieldError("address", self.address, f"is the network or broadcast address of {self.cidr}")
        return self


class AdminPeer(Strict):
    name: PeerName = Field(description="The laptop's name, a single DNS label.")
    public_key: WireGuardKey = Field(description="Its WireGuard public key (44 characters of base64, `wg pubkey`).")
    address: IpAddress = Field(description="Its address in the mesh: inside `cidr`, unique.")


class WireguardSettings(Strict):
    # Read by role firewall too (its UDP port, its interface a private zone, management), which runs where the
    # mesh does.
    ROLE: ClassVar[str] = "wireguard"

    private_network: PrivateNetwork | None = Field(
        None, description="The WireGuard mesh between the hosts; none: no mesh.")
    admin_peers: list[AdminPeer] = Field(
        [], description="The admins' laptops on the mesh, the same on every host; needs `private_network`.")
    management: Literal["public", "private"] = Field(
        "public", description="`public`, or `private`: no SSH on the public side at all, only over the mesh (needs "
        "`private_network`; the switch takes two runs, see docs/wireguard.md).")

    @model_validator(mode="after")
    def _management(self):
        if self.management == "private" and self.private_network is None:
            raise FieldError(
                "management",
                "private",
                "closes SSH on the public side; it needs private_network, the mesh the admins come in over",
            )
        return self


def mesh_problems(settings: Mapping[str, HostSettings]) -> list[str]:
    """Rules across the inventory: one mesh (same cidr, port, interface, preshared key), addresses unique
    among hosts and admin peers, admin peers inside the cidr and the same on every host."""
    problems: list[str] = []
    without_mesh = [
        f"host {name}: admin_peers = [{len(s.admin_peers)} peers]: needs private_network (the mesh they join)"
        for name, s in settings.items()
        if s.private_network is None and s.admin_peers
    ]
    mesh = {name: s for name, s in settings.items() if s.private_network is not None}
    if not mesh:
        return without_mesh
    first_name, first = next(iter(mesh.items()))
    owners: dict[str, str] = {}
    for name, s in mesh.items():
        net = s.private_network
        for field in ("cidr", "port", "interface", "preshared_key"):
            if getattr(net, field) != getattr(first.private_network, field):
                shown = getattr(net, field) if field != "preshared_key" else str(getattr(net, field))
                problems.append(
                    f"host {name}: private_network.{field} = {shown!r}: "
                    f"must be the same on every host of the mesh (host {first_name} has another)"
                )
        if net.address in owners:
            problems.append(
                f"host {name}: private_network.address = {net.address!r}: "
                f"already used by {owners[net.address]}; every mesh address must be unique"
            )
        owners.setdefault(net.address, f"host {name}")
        for cidr in s.private_cidrs:
            if ipaddress.ip_network(cidr).overlaps(ipaddress.ip_network(net.cidr)):
                problems.append(
                    f"host {name}: private_network.cidr = {net.cidr!r}: "
                    f"overlaps private_cidrs {cidr}; the mesh needs a network of its own"
                )
        if [p.model_dump() for p in s.admin_peers] != [p.model_dump() for p in first.admin_peers]:
            problems.append(
                f"host {name}: admin_peers: must be the same on every host of the mesh (host {first_name} has others)"
            )
    problems.extend(without_mesh)
    cidr = ipaddress.ip_network(first.private_network.cidr)
    keys: set[str] = set()
    for index, peer in enumerate(first.admin_peers):
        where = f"host {first_name}: admin_peers[{index}]"
        if ipaddress.ip_address(peer.address) not in cidr:
            problems.append(f"{where}.address = {peer.address!r}: must be inside the mesh cidr {cidr}")
        elif peer.address in owners:
            problems.append(
                f"{where}.address = {peer.address!r}: "
                f"already used by {owners[peer.address]}; every mesh address must be unique"
            )
        owners.setdefault(peer.address, f"admin peer {peer.name}")
        if peer.public_key in keys:
            problems.append(
                f"{where}.public_key = {peer.public_key!r}: used by another admin peer; every peer needs its own key"
            )
        keys.add(peer.public_key)
    return problems
