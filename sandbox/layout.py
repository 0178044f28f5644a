"""The slot's names, addresses and paths, each defined once, and the error every part raises."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

# A slot number lets separate sandboxes run side by side (each its own bridge, subnet, state).
SLOT = int(os.environ.get("OPENCLAW_SANDBOX_SLOT") or 0)
BRIDGE = f"ockit{SLOT}"
BRIDGE_MAC = f"02:6f:63:6b:00:{SLOT:02x}"  # locally administered, one per slot
NETWORK = ipaddress.ip_network(f"10.231.{SLOT}.0/24")
GATEWAY = str(NETWORK.network_address + 1)
MACHINE_PREFIX = f"ockit{SLOT}-"
# Sandbox hosts are served on <name>.openclaw.test (a reserved TLD: never resolves outside).
DOMAIN = "openclaw.test"


class SandboxError(Exception):
    """A sandbox operation failed; the message is one line meant for humans."""


def state_dir() -> Path:
    default = "/var/lib/openclaw-kit-sandbox" + (f"-{SLOT}" if SLOT else "")
    return Path(os.environ.get("OPENCLAW_SANDBOX_DIR") or default).absolute()


def cache_dir() -> Path:
    return Path(os.environ.get("OPENCLAW_SANDBOX_CACHE") or "/var/cache/openclaw-kit-sandbox").absolute()


def _host_name(i: int) -> str:
    return f"sbx{i}"


def _host_address(i: int) -> str:
    return str(NETWORK.network_address + 10 + i)


def host_domain(name: str) -> str:
    """The name a sandbox host is served on; the sandbox's DNS (challtestsrv) resolves it."""
    return f"{name}.{DOMAIN}"



def _host_index(name: str) -> int:
    return int(name.removeprefix("sbx"))


def _machine(name: str) -> str:
    return MACHINE_PREFIX + name


def _paths(sd: Path | None = None) -> dict[str, Path]:
    sd = sd or state_dir()
    return {
        "state": sd / "state.json",
        "lock": sd / ".lock",
        "key": sd / "id_ed25519",
        "known_hosts": sd / "known_hosts",
        "hosts": sd / "hosts",
        "logs": sd / "logs",
        "tinyproxy_conf": sd / "tinyproxy.conf",
        "pebble_conf": sd / "pebble-config.json",
        "pebble_ca": sd / "pebble-ca.pem",
        "pebble_cert": sd / "pebble-cert.pem",
        "pebble_key": sd / "pebble-key.pem",
    }


def _host_dir(name: str, sd: Path | None = None) -> Path:
    return _paths(sd)["hosts"] / name


def _log(name: str) -> Path:
    return _paths()["logs"] / f"{name}.log"
