"""A macOS 15 Apple-silicon host for operation tests, pyinfra-style: facts in, exact commands out.

The host is pyinfra's fake connector answering each command with a recorded output from
tests/unit/fixtures/macos15_arm64/ (README.md there says which outputs are copied from public
sources and which are reconstructed). There is no Mac here: this is all the macOS path is tested on.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from pathlib import Path

from pyinfra.api import Config, FileUploadCommand, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.connectors.util import CommandOutput
from pyinfra.context import ctx_host, ctx_state

from openclaw_kit import placed

FIXTURES = Path(__file__).parent / "fixtures" / "macos15_arm64"


def recorded(name: str) -> str:
    return (FIXTURES / name).read_text()


# A fresh Mac: what it answers before the kit has been there. Published: copied from an output someone
# posted (address in fixtures/macos15_arm64/README.md); reconstructed: written in the published or
# documented format. None was recorded on a Mac by this project.
FRESH = {
    "uname -s": "Darwin",
    "uname -m": recorded("uname-m.txt"),  # published (oneclickvirt/gostun#2, M2, macOS 14.5)
    "sw_vers -productVersion": recorded("sw_vers-productVersion.txt"),  # reconstructed, published format
    "brew --prefix": recorded("brew-prefix.txt"),  # reconstructed (Homebrew's documented prefix)
    "xcode-select -p": recorded("xcode-select-p.txt"),  # reconstructed
    "dscl . -list /Users UniqueID": recorded("dscl-list-ids.txt"),  # reconstructed
    # State line published (rgcr/m-cli#160), stealth line reconstructed
    "socketfilterfw --getglobalstate": recorded("socketfilterfw-fresh.txt"),
    "com.apple.SoftwareUpdate AutomaticCheckEnabled": recorded("softwareupdate-fresh.txt"),  # reconstructed
    "pmset -g": recorded("pmset-g.txt"),  # reconstructed in the published layout (5T33Z0/...#31)
    "fdesetup status": recorded("fdesetup-status.txt"),  # published (munkireport/munkireport-php#378)
}


def stat_line(path: str, mode: str = "-rw-r--r--", user: str = "root", group: str = "wheel") -> str:
    """What macOS' `stat -f` (pyinfra's BSD_STAT_COMMAND) prints for a file."""
    return f"user={user} group={group} mode={mode} atime=1764633600 mtime=1764633600 ctime=1764633600 size=1 {path}"


def run_role(role, settings, responses: dict) -> list[tuple[str, list[str]]]:
    """Every operation `role(settings)` runs on the fake Mac: (name, commands), in order, each
    operation's `_if` evaluated as pyinfra does when it executes (an operation that ran commands
    "changed"); an operation with nothing to do is left out."""
    inventory = Inventory(([("@fake/mini", {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": responses})], {}))
    state = State(inventory, Config())
    connect_all(state)
    host = inventory.get_host("@fake/mini")
    planned = []
    with ctx_state.use(state), ctx_host.use(host):
        role(settings)
        for op_hash in state.get_op_order():
            data = state.get_op_data_for_host(host, op_hash)
            conditions = data.global_arguments.get("_if") or []
            conditions = conditions if isinstance(conditions, list) else [conditions]
            commands = []
            if all(condition() for condition in conditions):
                commands = [f"upload {command.dest}" if isinstance(command, FileUploadCommand)
                            else command.get_raw_value() for command in data.command_generator()]
            data.operation_meta.set_complete(True, commands, CommandOutput([]))
            if commands:
                planned.append((next(iter(state.op_meta[op_hash].names)), commands))
    return planned


def uploads(role, settings, responses: dict) -> dict[str, bytes]:
    """The content of every file `role(settings)` would upload, by remote path."""
    inventory = Inventory(([("@fake/mini", {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": responses})], {}))
    state = State(inventory, Config())
    connect_all(state)
    host = inventory.get_host("@fake/mini")
    found = {}
    with ctx_state.use(state), ctx_host.use(host):
        role(settings)
        for op_hash in state.get_op_order():
            for command in state.get_op_data_for_host(host, op_hash).command_generator():
                if isinstance(command, FileUploadCommand):
                    src = command.src
                    content = src.getvalue() if hasattr(src, "getvalue") else Path(src).read_bytes()
                    found[command.dest] = content if isinstance(content, bytes) else content.encode()
    return found


def file_responses(files: dict[str, bytes | str], modes: dict[str, tuple[str, str, str]]) -> dict:
    """stat, sha1 and sha256 answers for files already in place: path -> content; modes: path -> (mode, user, group)."""
    responses = {}
    for path, content in files.items():
        data = content if isinstance(content, bytes) else content.encode()
        mode, user, group = modes.get(path, ("-rw-r--r--", "root", "wheel"))
        quoted = re.escape(path)
        responses.update(placed_response(path, hashlib.sha1(data).hexdigest(), mode, user, group))
        responses[re.compile(rf"(sha256sum|shasum -a 256|sha256) {quoted}\b")] = f"{hashlib.sha256(data).hexdigest()}  {path}"
        responses[re.compile(rf"stat .*{quoted}( |'|$)")] = stat_line(path, mode, user, group)
    return responses


def placed_response(path: str, sha1: str, mode: str = "-rw-r--r--", user: str = "root", group: str = "wheel") -> dict:
    """The answer to PlacedFile (placed.template, checked_config): the file's stat, its sha1, the parent's stat."""
    return {re.compile(rf"sha1sum {re.escape(path)}( |'|$)"): [
        stat_line(path, mode, user, group), placed.SEPARATOR, f"{sha1}  {path}",
        placed.SEPARATOR, stat_line(posixpath.dirname(path), "drwxr-xr-x", "root", "wheel"),
    ]}
