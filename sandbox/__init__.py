"""Local sandbox of real Debian and Ubuntu hosts for testing the kit.

`up(n, distros)` boots n systemd-booted containers (systemd-nspawn) of Debian 12,
Debian 13 or Ubuntu 24.04 (DISTROS; a mix is fine) on the bridge ockit{slot},
reachable over SSH from this machine, plus three helper
services on the bridge address: tinyproxy (a forward proxy, for the kit's own
`proxy` setting), pebble (a test ACME server) and pebble-challtestsrv (its DNS).
`down()` removes all of it again except the base image cache and the SSH key
pair. Everything is described by state.json in the state directory, which
other code reads through `load_state()`.

Requires root and the Debian packages systemd-container, debootstrap,
tinyproxy, pebble, openssh-client and iproute2 (Ubuntu images also the
ubuntu-keyring package, which the sandbox fetches from Debian 13 if missing). Works without systemd as PID 1.

One concern a module: `layout` (the slot's names, addresses and paths), `files`, `processes`,
`images` (distros and base images), `services` (tinyproxy, pebble, challtestsrv), `bridge`,
`hosts`, `state` (state.json) and `lifecycle` (available, up, down, status). This module only
re-exports what other code uses; names with a leading underscore are the package's internals.
"""

# `X as X`: re-exported beyond __all__ for tests/ and bench/ (the slot's bridge and network, image names,
# an image's apt sources, the choice of distros per host).
from .hosts import ssh_command
from .images import DEFAULT_DISTRO, DISTROS
from .images import apt_sources as apt_sources
from .images import base_image_name as base_image_name
from .layout import BRIDGE as BRIDGE
from .layout import BRIDGE_MAC as BRIDGE_MAC
from .layout import GATEWAY as GATEWAY
from .layout import MACHINE_PREFIX as MACHINE_PREFIX
from .layout import NETWORK as NETWORK
from .layout import SLOT as SLOT
from .layout import SandboxError, cache_dir, host_domain, state_dir
from .lifecycle import available, down, status, up
from .lifecycle import host_specs as host_specs
from .state import load_state

__all__ = [
    "SandboxError", "available", "up", "down", "status", "load_state",
    "ssh_command", "state_dir", "cache_dir", "host_domain", "DISTROS", "DEFAULT_DISTRO",
]
