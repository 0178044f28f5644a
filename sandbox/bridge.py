"""The bridge the hosts and the services share, with the gateway address."""

from __future__ import annotations

import ipaddress
import json
import subprocess

from .layout import BRIDGE, BRIDGE_MAC, GATEWAY, MACHINE_PREFIX, NETWORK, SandboxError
from .processes import _run


def _links() -> list[dict]:
    return json.loads(_run(["ip", "-j", "addr", "show"]).stdout or "[]")


def _ensure_bridge() -> bool:
    """Create the bridge with the gateway address; return True if this call made it."""
    links = _links()
    for link in links:
        if link["ifname"] == BRIDGE:
            continue
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet" and ipaddress.ip_address(addr["local"]) in NETWORK:
                raise SandboxError(f"bridge conflict: {addr['local']} on {link['ifname']} is "
                                   f"already in {NETWORK}; remove it or stop what made it")
    existing = next((link for link in links if link["ifname"] == BRIDGE), None)
    made = False
    if existing is None:
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        made = True
    elif _link_kind(BRIDGE) != "bridge":
        raise SandboxError(f"bridge conflict: {BRIDGE} exists but is not a bridge")
    try:
        addrs = [] if made else [a.get("local") for a in existing.get("addr_info", [])]
        if GATEWAY not in addrs:
            _run(["ip", "addr", "add", f"{GATEWAY}/{NETWORK.prefixlen}", "dev", BRIDGE])
        # A bridge takes the lowest MAC of its ports unless given one: a port coming or going (a host,
        # a test's veth) would change the gateway's MAC under the hosts' ARP caches, and connections from
        # here stall until they expire (an SSH from the controller timed out that way in CI).
        _run(["ip", "link", "set", BRIDGE, "address", BRIDGE_MAC])
        _run(["ip", "link", "set", BRIDGE, "up"])
    except BaseException:
        if made:
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        raise
    return made


def _link_kind(name: str) -> str:
    info = json.loads(_run(["ip", "-j", "-d", "link", "show", name]).stdout or "[{}]")
    return info[0].get("linkinfo", {}).get("info_kind", "")


def _remove_links() -> None:
    """Delete the bridge and any host's veth left over.

    nspawn's veths vanish with the container's namespace; remove strays anyway."""
    for link in json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True,
                                          text=True).stdout or "[]"):
        name = link["ifname"].split("@")[0]
        if name.startswith("vb-" + MACHINE_PREFIX) or (name == BRIDGE and _link_kind(BRIDGE) == "bridge"):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
