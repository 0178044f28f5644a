"""state.json: what the sandbox runs, written after every step and read by other code through load_state()."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from .files import _write
from .layout import BRIDGE, GATEWAY, NETWORK, SandboxError, _host_index, _paths
from .services import PORTS


def load_state() -> dict:
    """The running sandbox as described in state.json."""
    try:
        return json.loads(_paths()["state"].read_text())
    except FileNotFoundError:
        raise SandboxError("sandbox is not up: run `python -m sandbox up`") from None
    except (OSError, ValueError) as e:
        raise SandboxError(f"sandbox state {_paths()['state']} is unreadable ({e}): "
                           "run `python -m sandbox down` then `up`") from None


def _read_state() -> dict:
    with contextlib.suppress(SandboxError):
        return load_state()
    return {}


def _proxy_ca_bundle() -> str | None:
    """The local CAs this machine trusts beyond the distro's (a TLS-inspecting egress proxy's).

    The hosts reach the package registries through tinyproxy and so through whatever this machine
    goes through; they need the same extra trust, which the kit's proxy_ca_file setting gives them.
    """
    local = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
    if not local:
        return None
    bundle = _paths()["state"].parent / "proxy-ca.pem"
    _write(bundle, "".join(path.read_text() for path in local), 0o644)
    return str(bundle)


def _save_state(hosts: list[dict], services: dict[str, int]) -> dict:
    p = _paths()
    state = {
        "bridge": BRIDGE,
        "network": str(NETWORK),
        "gateway": GATEWAY,
        "ssh_user": "root",
        "ssh_key": str(p["key"]),
        "known_hosts": str(p["known_hosts"]),
        "proxy": f"http://{GATEWAY}:{PORTS['tinyproxy']}",
        "acme_directory": f"https://{GATEWAY}:{PORTS['pebble']}/dir",
        "acme_ca_file": str(p["pebble_ca"]),
        "acme_roots_url": f"https://{GATEWAY}:{PORTS['pebble_mgmt']}/roots/0",
        "challtestsrv_management": f"http://{GATEWAY}:{PORTS['challtestsrv']}",
        "proxy_ca_file": _proxy_ca_bundle(),
        "hosts": sorted(hosts, key=lambda h: _host_index(h["name"])),
        "services": services,
    }
    _write(p["state"], json.dumps(state, indent=2) + "\n", 0o644)
    return state
