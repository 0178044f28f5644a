"""testinfra checks driven by the same inventory the deploy uses.

    pytest tests/verify --inventory inventories/prod.py [--limit HOST]

Every check runs once per host of the inventory (the test id is the host's name), with that
host's validated settings, over pyinfra's own SSH connection made from the inventory as for a
deploy: user, key, port, known_hosts file, host key checking, and every command through the
inventory's sudo/su settings (`_sudo`, `_sudo_user`, `_su_user`, ...), as the deploy runs its own.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult

from openclaw_kit.connection import send_without_delay
from openclaw_kit.secrets import controller_env
from openclaw_kit.settings import HostSettings, validate_hosts

# A check that hangs fails after this many seconds instead of stopping the whole run.
COMMAND_TIMEOUT = 300


def pytest_addoption(parser):
    parser.addoption(
        "--inventory",
        default=os.environ.get("KIT_INVENTORY"),
        help="pyinfra inventory file whose hosts to check (default: $KIT_INVENTORY)",
    )
    parser.addoption("--limit", action="append", metavar="HOST", help="check only this host of the inventory (repeatable)")


def pytest_configure(config):
    # Here as well as in pyproject.toml: an installed wheel's checks run without the checkout's configuration.
    config.addinivalue_line("markers", "late: a verify check reading a command started early (slow_commands); runs after the others")


class PyinfraBackend(BaseBackend):
    """testinfra's commands over pyinfra's SSH connector to one inventory host.

    One connection per host with the deploy's TCP_NODELAY tweak: a command costs a few ms instead
    of the ~0.2 s of testinfra's `ssh://` backend (a new ssh process each). Each command is wrapped
    by pyinfra itself (make_unix_command_for_host) with the host's sudo/su arguments.
    """

    NAME = "pyinfra"

    def __init__(self, host, auth: dict[str, Any]):
        self.pyinfra_host = host
        self.auth = auth
        super().__init__(host.name)

    @functools.cached_property
    def client(self):
        self.pyinfra_host.connect(show_errors=False, raise_exceptions=True)
        send_without_delay(self.pyinfra_host)
        return self.pyinfra_host.connector.client

    def start(self, command: str) -> Callable[[], CommandResult]:
        """Start command on a channel of its own; the returned call waits for its result."""
        from pyinfra.api import StringCommand
        from pyinfra.connectors.util import make_unix_command_for_host

        wrapped = make_unix_command_for_host(self.pyinfra_host.state, self.pyinfra_host, StringCommand(command), **self.auth)
        channel = self.client.get_transport().open_session()
        channel.settimeout(COMMAND_TIMEOUT)
        channel.exec_command(wrapped.get_raw_value())

        def result() -> CommandResult:
            stdout = b"".join(channel.makefile("rb"))
            stderr = b"".join(channel.makefile_stderr("rb"))
            return self.result(channel.recv_exit_status(), self.encode(command), stdout, stderr)
        return result

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        return self.start(self.quote(command, *args))()


@dataclass
class Target:
    name: str
    host: testinfra.host.Host
    settings: HostSettings
    data: dict  # the host's inventory data (connection keys included)
    started: dict[str, Callable[[], CommandResult]] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name

    @functools.cached_property
    def is_mac(self) -> bool:
        return self.host.system_info.type == "darwin"

    def output_of(self, command: str) -> str:
        """check_output of a command, taking the result of its early start (slow_commands) when there was one."""
        result = self.started.pop(command, None) or self.host.backend.start(command)
        found = result()
        assert found.rc == 0, f"{command} exited {found.rc}: {found.stderr[-2000:]}"
        return found.stdout.rstrip("\r\n")


def load_inventory(path: str):
    """The inventory's hosts, each ready to connect, exactly as pyinfra builds them for a deploy."""
    from pyinfra.api import Config, State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    with ctx_state.use(State()):
        inventory = make_inventory(path)
    state = State(inventory, Config())
    return state, list(inventory)


def testinfra_host(state, host) -> testinfra.host.Host:
    from pyinfra.api.arguments import auth_argument_meta

    # The deploy's own sudo/su settings: the host's data, else pyinfra's defaults.
    auth = {key: host.data.get(key, meta.default(state.config)) for key, meta in auth_argument_meta.items()}
    found = testinfra.host.Host(PyinfraBackend(host, auth))
    found.backend.set_host(found)
    return found


def load_targets(path: str, limit: list[str] | None) -> list[Target]:
    state, hosts = load_inventory(path)
    if limit:
        unknown = sorted(set(limit) - {host.name for host in hosts})
        if unknown:
            raise pytest.UsageError(f"--limit {', '.join(unknown)}: not a host of {path}")
        hosts = [host for host in hosts if host.name in limit]
    data = {host.name: host.data.dict() for host in hosts}
    settings = validate_hosts(data, controller_env())
    return [Target(host.name, testinfra_host(state, host), settings[host.name], data[host.name]) for host in hosts]


@pytest.fixture(autouse=True)
def start_slow_commands(request):
    """Some checks read a command that takes seconds (OpenClaw's CLI: Node.js loading OpenClaw):
    each module lists them in `slow_commands(settings)`. They start on each host before its first check,
    so they overlap the other checks; the checks that read them are marked `late` and run last. Each
    is an SSH channel of its own, and the kit's sshd allows 4 per connection (sshd_max_sessions): keep
    them few (3 made other checks fail to open theirs)."""
    target = getattr(request.node, "callspec", None) and request.node.callspec.params.get("target")
    if isinstance(target, Target) and not target.started:
        modules = {item.module for item in request.session.items}
        commands = [command for module in modules for command in getattr(module, "slow_commands", lambda _: [])(target.settings)]
        target.started.update({command: target.host.backend.start(command) for command in commands})


def pytest_generate_tests(metafunc):
    if "target" not in metafunc.fixturenames:
        return
    path = metafunc.config.getoption("inventory")
    if not path:
        raise pytest.UsageError("tests/verify needs --inventory PATH (or KIT_INVENTORY) naming the hosts to check")
    if not Path(path).is_file():
        raise pytest.UsageError(f"--inventory {path}: no such file")
    if "_kit_targets" not in metafunc.config.__dict__:
        metafunc.config.__dict__["_kit_targets"] = load_targets(path, metafunc.config.getoption("limit"))
    targets = metafunc.config.__dict__["_kit_targets"]
    metafunc.parametrize("target", targets, ids=[t.name for t in targets])


def pytest_collection_modifyitems(config, items):
    """A Mac gets the checks of test_macos.py, a Linux host all the others: the rest are deselected
    (not skipped: nothing was left unchecked)."""
    keep, drop = [], []
    for item in items:
        target = getattr(item, "callspec", None) and item.callspec.params.get("target")
        if isinstance(target, Target) and target.is_mac != (item.path.name == "test_macos.py"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    # Stable: the other checks keep their order.
    items.sort(key=lambda item: item.get_closest_marker("late") is not None)
