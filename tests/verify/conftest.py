"""testinfra checks driven by the same inventory the deploy uses.

    pytest tests/verify --inventory inventories/prod.py

Every check runs once per host of the inventory (the test id is the host's name), with that
host's validated settings, over SSH with the inventory's own connection data.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra

from openclaw_kit.secrets import controller_env
from openclaw_kit.settings import HostSettings, validate_hosts


def pytest_addoption(parser):
    parser.addoption(
        "--inventory",
        default=os.environ.get("KIT_INVENTORY"),
        help="pyinfra inventory file whose hosts to check (default: $KIT_INVENTORY)",
    )


@dataclass
class Target:
    name: str
    host: testinfra.host.Host
    settings: HostSettings

    def __str__(self) -> str:
        return self.name


def load_inventory(path: str) -> dict[str, dict]:
    """Host name -> merged data, exactly as pyinfra builds it for a deploy."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    with ctx_state.use(State()):
        inventory = make_inventory(path)
    return {host.name: host.data.dict() for host in inventory}


def ssh_host(name: str, data: dict) -> testinfra.host.Host:
    address = data.get("ssh_hostname") or name
    user = data.get("ssh_user") or "root"
    port = data.get("ssh_port") or 22
    options = ["-o BatchMode=yes"]
    if data.get("ssh_known_hosts_file"):
        options.append(f"-o UserKnownHostsFile={shlex.quote(str(data['ssh_known_hosts_file']))}")
    if data.get("ssh_strict_host_key_checking"):
        options.append(f"-o StrictHostKeyChecking={data['ssh_strict_host_key_checking']}")
    return testinfra.get_host(
        f"ssh://{user}@{address}:{port}",
        ssh_identity_file=data.get("ssh_key"),
        ssh_extra_args=" ".join(options),
    )


def load_targets(path: str) -> list[Target]:
    hosts = load_inventory(path)
    settings = validate_hosts(hosts, controller_env())
    return [Target(name, ssh_host(name, data), settings[name]) for name, data in hosts.items()]


def pytest_generate_tests(metafunc):
    if "target" not in metafunc.fixturenames:
        return
    path = metafunc.config.getoption("inventory")
    if not path:
        raise pytest.UsageError("tests/verify needs --inventory PATH (or KIT_INVENTORY) naming the hosts to check")
    if not Path(path).is_file():
        raise pytest.UsageError(f"--inventory {path}: no such file")
    targets = metafunc.config.__dict__.setdefault("_kit_targets", load_targets(path))
    metafunc.parametrize("target", targets, ids=[t.name for t in targets])
