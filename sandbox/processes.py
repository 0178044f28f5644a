"""The processes the sandbox runs: commands run to completion, daemons started detached, found in /proc and stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .layout import SandboxError


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a command, raising SandboxError with its stderr on failure."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    try:
        return subprocess.run(args, check=True, **kw)
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or e.stdout or "").strip().splitlines()
        raise SandboxError(f"{' '.join(args)} failed (exit {e.returncode})"
                           + (f": {detail[-1]}" if detail else "")) from None
    except FileNotFoundError:
        raise SandboxError(f"{args[0]} not found") from None


# Popen objects of the daemons we started, kept so they are reaped (a zombie
# would otherwise look alive) and never garbage-collected while running.
_CHILDREN: dict[int, subprocess.Popen] = {}


def _spawn(args: list[str], log: Path, env: dict | None = None) -> int:
    """Start a long-running process detached from our session; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
    _CHILDREN[proc.pid] = proc
    return proc.pid


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _alive(pid: int | None, marker: str | None = None) -> bool:
    """True if pid runs and (when given) its command line contains marker.

    The marker guards against pid reuse, e.g. after the machine rebooted."""
    if not pid:
        return False
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    return marker is None or any(marker in a for a in _cmdline(pid))


def _pids(match) -> list[int]:
    """Pids of all processes whose argv satisfies match(argv)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            argv = _cmdline(int(entry.name))
            if argv and match(argv):
                out.append(int(entry.name))
    return out


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _stop(pids: list[int], timeout: float) -> None:
    """SIGTERM, wait up to timeout, then SIGKILL what is left."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
