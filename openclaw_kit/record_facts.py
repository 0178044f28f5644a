"""Record what the kit reads from a host, for the tests that run on recorded facts.

    openclaw-kit record-facts inventories/prod.py HOST [--out DIR]      (or: ./kit record-facts)

Runs the deploy as `pyinfra --dry --limit HOST` (facts are read, no operation runs) and keeps the
output of every fact command the kit runs on that host. Any other command is refused before it
reaches the host, so recording cannot change it. The outputs are written, scrubbed of serial
numbers, hardware UUIDs, MAC addresses, public addresses, user and host names and the secrets the
host's settings reference, to `tests/unit/fixtures/<platform>_<arch>/` in a checkout, else
`recorded-facts/<platform>_<arch>/` in the working directory (e.g. `macos15_arm64`,
`debian12_x86_64`): one file per command, `facts.json` (file, fact, command, exit status) and a
README.md table saying where each file came from. Send that directory to the kit's maintainers:
it is how the macOS path learns what a real Mac answers.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import ipaddress
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from openclaw_kit.paths import CHECKOUT, KIT, deploy_file

# Where the unit tests read them in a checkout; elsewhere (an installed wheel) the working directory.
FIXTURES = CHECKOUT / "tests" / "unit" / "fixtures" if KIT == CHECKOUT else Path("recorded-facts")
SCRUBBED = "SCRUBBED"

_MAC = re.compile(r"\b[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}\b")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
# "Serial Number (system): C02XXXX", "IOPlatformSerialNumber" = "C02XXXX", serial=...
# Apple silicon's provisioning UDID: 8 and 16 hex digits.
_UDID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{16}\b")
_SERIAL = re.compile(r"(?i)(serial[\w ()]*\"?\s*[:=]\s*\"?)([^\s\"]+)")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6 = re.compile(r"(?<![\w:])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![\w:])")  # candidates; ipaddress decides
_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


class RecordError(Exception):
    """Recording stopped; the message is one line for people."""


def _public_address(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if not address.is_global:
        return text
    return "192.0.2.1" if address.version == 4 else "2001:db8::1"


# Account names every image or the kit itself has: not a person's, and the fixtures need them as they are.
COMMON_USERS = {"root", "admin", "ubuntu", "debian", "ec2-user", "Shared", "Guest", "openclaw", "_openclaw"}
_HOME = re.compile(r"/(?:home|Users)/([A-Za-z0-9._-]+)")


@dataclass
class Scrubber:
    """Replaces what identifies a machine or a person in a recorded output."""

    hosts: set[str] = field(default_factory=set)  # host names and domains
    users: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)

    def learn_users(self, text: str) -> None:
        self.users.update(_HOME.findall(text))

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        text = _MAC.sub("02:00:00:00:00:00", text)
        text = _UUID.sub("00000000-0000-0000-0000-000000000000", text)
        text = _UDID.sub("00000000-0000000000000000", text)
        text = _SERIAL.sub(lambda m: m.group(1) + SCRUBBED, text)
        text = _IPV4.sub(lambda m: _public_address(m.group(0)), text)
        text = _IPV6.sub(lambda m: _public_address(m.group(0)), text)
        for name in sorted(self.hosts, key=len, reverse=True):
            text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", "host.example.com" if "." in name else "host", text)
        for name in sorted(self.users - COMMON_USERS, key=len, reverse=True):
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", "user", text)
        return text


@dataclass
class Recording:
    fact: str
    command: str
    success: bool
    stdout: list[str]
    stderr: list[str]


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def platform_directory(kernel: str, distribution: dict | None, macos_version: str | None, arch: str) -> str:
    """`debian12_x86_64`, `ubuntu2404_x86_64`, `macos15_arm64`."""
    if kernel == "Darwin":
        name = "macos" + (macos_version or "").strip().split(".")[0]
    else:
        distribution = distribution or {}
        version = str(distribution.get("major") or "")
        if distribution.get("name") == "Ubuntu" and distribution.get("minor") is not None:
            version += f"{distribution['minor']:02d}"
        name = (distribution.get("name") or kernel).split()[0].lower() + version
    return f"{name}_{arch.strip()}"


class Recorder:
    """Patches pyinfra so that fact commands are recorded and every other command is refused."""

    def __init__(self, host_name: str):
        self.host_name = host_name
        self.recordings: list[Recording] = []
        self.scrub = Scrubber()
        self.platform: dict = {}
        self._fact_depth = 0
        self.refused: list[str] = []

    def install(self):
        from pyinfra.api import facts
        from pyinfra.api.host import Host

        original_get_fact = facts._get_fact
        original_run = Host.run_shell_command
        recorder = self

        def get_fact(state, host, cls, *args, **kwargs):
            if not recorder.platform:
                recorder._read_platform(original_get_fact, state, host)
            recorder._fact_depth += 1
            recorder._current_fact = f"{cls.__module__.removeprefix('pyinfra.facts.')}.{cls.__name__}"
            try:
                return original_get_fact(state, host, cls, *args, **kwargs)
            finally:
                recorder._fact_depth -= 1

        def run_shell_command(host, command, *args, **kwargs):
            shown = command if isinstance(command, str) else command.get_masked_value()
            if recorder._fact_depth == 0:
                recorder.refused.append(shown)
                raise RecordError(f"record-facts runs only the kit's fact commands; refused on {host.name}: {shown}")
            status, output = original_run(host, command, *args, **kwargs)
            recorder.recordings.append(Recording(recorder._current_fact, shown, bool(status),
                                                 list(output.stdout_lines), list(output.stderr_lines)))
            return status, output

        facts._get_fact = get_fact
        Host.run_shell_command = run_shell_command

    def _read_platform(self, get_fact, state, host):
        """The facts the output directory is named by, and the names the scrubber replaces."""
        from pyinfra.facts.server import Arch, Hostname, Kernel, LinuxDistribution, MacosVersion

        self.platform = {"pending": True}
        self._fact_depth += 1
        try:
            def read(cls):
                self._current_fact = f"server.{cls.__name__}"
                return get_fact(state, host, cls)

            kernel = read(Kernel)
            self.platform = {
                "kernel": kernel,
                "arch": read(Arch),
                "distribution": read(LinuxDistribution) if kernel == "Linux" else None,
                "macos_version": read(MacosVersion) if kernel == "Darwin" else None,
            }
            names = (read(Hostname), host.name, host.data.get("hostname"), host.data.get("domain"),
                     *(host.data.get("extra_domains") or ()))
            self.scrub.hosts.update(name for name in names if name and not _is_address(name))
        finally:
            self._fact_depth -= 1
        if host.data.get("ssh_user"):
            self.scrub.users.add(host.data.get("ssh_user"))
        from openclaw_kit.secrets import controller_env

        env = controller_env()
        referenced = set(_REFERENCE.findall(json.dumps(host.data.dict(), default=str)))
        self.scrub.secrets.update(env[name] for name in referenced if env.get(name))

    def write(self, out: Path | None) -> Path:
        if self.refused:
            raise RecordError(f"refused to run {len(self.refused)} command(s) that are not facts, "
                              f"the first: {self.scrub(self.refused[0])}; nothing was written")
        if not self.recordings:
            raise RecordError(f"no fact was read from {self.host_name}: is it in the inventory?")
        platform = {k: v for k, v in self.platform.items() if k != "pending"}
        directory = out or FIXTURES / platform_directory(**platform)
        directory.mkdir(parents=True, exist_ok=True)
        seen: dict[str, Recording] = {}
        for recording in self.recordings:  # pyinfra reads some facts twice; keep one per command
            seen.setdefault(recording.command, recording)
            self.scrub.learn_users("\n".join(recording.stdout + [recording.command]))
        index, rows = [], []
        for recording in seen.values():
            digest = hashlib.sha256(recording.command.encode()).hexdigest()[:8]
            name = f"{recording.fact}-{digest}.txt"
            stdout = self.scrub("\n".join(recording.stdout))
            (directory / name).write_text(stdout + ("\n" if stdout else ""))
            command = self.scrub(recording.command)
            index.append({"file": name, "fact": recording.fact, "command": command, "success": recording.success,
                          "stderr": [self.scrub(line) for line in recording.stderr]})
            rows.append(f"| `{name}` | `{recording.fact}` | `{_cell(command)}` |")
        (directory / "facts.json").write_text(json.dumps(index, indent=1) + "\n")
        today = datetime.date.today().isoformat()
        label = platform_directory(**platform)
        (directory / "README.md").write_text(
            f"# Facts recorded from a real {label} host\n\n"
            f"Recorded by `./kit record-facts` on {today}: every file is the output of the command in its row, "
            "as the host printed it, with serial numbers, hardware UUIDs, MAC addresses, public addresses, user and "
            "host names and secrets replaced. `facts.json` has each command's exit status and stderr.\n\n"
            "| file | fact | command |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n")
        return directory


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("`", "'")[:300]


def record(inventory: str, host_name: str, out: Path | None = None) -> Path:
    """Record `host_name` of `inventory`; the directory written."""
    from pyinfra_cli.main import main as pyinfra_main

    recorder = Recorder(host_name)
    recorder.install()
    argv = sys.argv
    sys.argv = ["pyinfra", "--dry", "--limit", host_name, inventory, str(deploy_file())]
    try:
        pyinfra_main()
    except SystemExit as exit_:
        if exit_.code not in (0, None) and not recorder.refused:
            failed = f"the dry run on {host_name} failed (pyinfra exit {exit_.code}); see its output above"
            raise RecordError(failed) from None
    finally:
        sys.argv = argv
    return recorder.write(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openclaw-kit record-facts", description=__doc__.split("\n\n")[1])
    parser.add_argument("inventory")
    parser.add_argument("host", help="the host's name in the inventory")
    parser.add_argument("--out", type=Path, help=f"where to write (default: {FIXTURES}/<platform>_<arch>/)")
    args = parser.parse_args(argv)
    try:
        directory = record(args.inventory, args.host, args.out)
    except RecordError as error:
        print(f"record-facts: {error}", file=sys.stderr)
        return 2
    print(f"record-facts: wrote {directory}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
