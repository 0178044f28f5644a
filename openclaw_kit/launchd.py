"""launchd, the service manager of macOS: system daemons from plists the kit writes with plistlib.

A plist is written as a candidate, checked with `plutil -lint`, and only then replaces the live
one in /Library/LaunchDaemons (openclaw_kit.operations.checked_config); a job is loaded with
`launchctl bootstrap system`, restarted with `kickstart -k`, and reloaded for a new plist by
templates/launchd/reload.sh.j2 (bootout, wait until the old job has left, bootstrap).
"""

from __future__ import annotations

import plistlib
import shlex

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import File
from pyinfra.operations import server

from openclaw_kit.operations import checked_config
from openclaw_kit.templates import render

DAEMONS = "/Library/LaunchDaemons"
CANDIDATES = "/var/db/openclaw-kit/launchd-candidate"
# A job's marker while its reload is under way: still there, the next deploy reloads it again.
RELOAD_PENDING = "/var/db/openclaw-kit/launchd-reload-pending"
EXIT_TIMEOUT_DEFAULT = 20  # launchd.plist(5): SIGTERM to SIGKILL when a plist sets no ExitTimeOut
# How long past ExitTimeOut a reload waits for the old job to leave the domain before it gives up.
RELOAD_MARGIN = 30

# The keys launchd.plist(5) documents; a plist with any other key is refused on the controller.
KEYS = frozenset({
    "Label", "Disabled", "UserName", "GroupName", "inetdCompatibility", "LimitLoadToHosts",
    "LimitLoadFromHosts", "LimitLoadToSessionType", "LimitLoadToHardware", "LimitLoadFromHardware", "Program",
    "ProgramArguments", "EnableGlobbing", "EnableTransactions", "EnablePressuredExit", "OnDemand",
    "ServiceIPC", "KeepAlive", "RunAtLoad", "RootDirectory", "WorkingDirectory", "EnvironmentVariables",
    "Umask", "TimeOut", "ExitTimeOut", "ThrottleInterval", "InitGroups", "WatchPaths", "QueueDirectories",
    "StartOnMount", "StartInterval", "StartCalendarInterval", "StandardInPath", "StandardOutPath",
    "StandardErrorPath", "Debug", "WaitForDebugger", "SoftResourceLimits", "HardResourceLimits", "Nice",
    "ProcessType", "AbandonProcessGroup", "LowPriorityIO", "LowPriorityBackgroundIO",
    "MaterializeDatalessFiles", "LaunchOnlyOnce", "MachServices", "Sockets", "LaunchEvents", "SessionCreate",
    "AssociatedBundleIdentifiers",
})


def plist_text(plist: dict) -> str:
    unknown = sorted(set(plist) - KEYS)
    if unknown:
        raise ValueError(f"launchd plist {plist.get('Label')}: keys not in launchd.plist(5): {unknown}")
    return plistlib.dumps(plist, sort_keys=True).decode()


def plist_path(label: str) -> str:
    return f"{DAEMONS}/{label}.plist"


def reload_pending_path(label: str) -> str:
    return f"{RELOAD_PENDING}/{label}"


def reload_script(label: str, plist: dict) -> str:
    return render("launchd", "reload.sh.j2", label=label, plist=plist_path(label), pending=reload_pending_path(label),
                  wait_limit=plist.get("ExitTimeOut", EXIT_TIMEOUT_DEFAULT) + RELOAD_MARGIN)


class LaunchdJob(FactBase):
    """A system job as `launchctl print system/<label>` shows it: {"state": ..., "pid": ..., "path": ...},
    or None when it is not loaded."""

    def command(self, label: str) -> str:
        return f"launchctl print system/{shlex.quote(label)} 2>/dev/null || true"

    def process(self, output):
        lines = [line.strip() for line in output]
        if not lines or not lines[0].endswith("= {"):
            return None
        job, depth = {}, 0
        # Only the job's own top-level properties, not those of nested blocks (`arguments = {`, ...):
        # counted by braces, since published outputs are indented with tabs or with spaces
        # (tests/unit/fixtures/macos15_arm64/README.md).
        for line in lines[1:]:
            if line.endswith("{"):
                depth += 1
            elif line == "}":
                depth -= 1
            elif depth == 0 and " = " in line:
                key, _, value = line.partition(" = ")
                job.setdefault(key, value)
        return {"state": job.get("state"), "pid": int(job["pid"]) if job.get("pid", "").isdigit() else None,
                "path": job.get("path")}


class Daemon:
    """What launchd.daemon did: `plist` (a new plist went live) and `loaded` (the job was (re)loaded)."""

    def __init__(self, plist, loaded):
        self.plist, self.loaded = plist, loaded


def daemon(*, name: str, label: str, plist: dict, restart_when: list | None = None) -> Daemon:
    """A system LaunchDaemon with this plist, loaded; a changed plist reloads it (bootout, bootstrap),
    and a change in any of `restart_when` (operations) restarts it (kickstart -k)."""
    path = plist_path(label)
    q = shlex.quote
    plist_op = checked_config(
        name=f"{name}: {path}",
        files={f"{label}.plist": plist_text(plist)},
        live_dir=DAEMONS,
        candidate_dir=CANDIDATES,
        check=f"plutil -lint -s {q(f'{CANDIDATES}/{label}.plist')}",
        rejected=f"plutil rejected the new {label}.plist; the loaded job keeps the old one",
        user="root",
        group="wheel",
        mode="644",
    )
    job = host.get_fact(LaunchdJob, label=label)
    pending = host.get_fact(File, path=reload_pending_path(label)) is not None
    if job is None or job.get("path") != path:
        loaded = server.shell(
            name=f"{name}: load {label} (launchctl bootstrap system)",
            commands=[f"launchctl enable system/{q(label)}", f"launchctl bootstrap system {q(path)}",
                      *([f"rm -f {q(reload_pending_path(label))}"] if pending else [])],
        )
        return Daemon(plist_op, loaded)

    def reloading() -> bool:
        return pending or plist_op.did_change()
    # bootout + bootstrap picks up a changed plist; kickstart -k restarts with the loaded one.
    loaded = server.shell(
        name=f"{name}: reload {label} for its new plist (bootout, wait until it has left, bootstrap)",
        commands=[reload_script(label, plist)],
        _if=reloading,
    )
    if restart_when:
        server.shell(
            name=f"{name}: restart {label} for its new code, config or secrets (kickstart -k)",
            commands=[f"launchctl kickstart -k system/{q(label)}"],
            _if=lambda: not reloading() and any(op.did_change() for op in restart_when),
        )
    return Daemon(plist_op, loaded)
