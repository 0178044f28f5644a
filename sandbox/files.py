"""Files the sandbox writes, reads and removes: atomic writes, log tails, locks, and trees that may hold mounts."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .layout import SandboxError


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write atomically: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    last = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return f"last lines of {path}: " + (" | ".join(last) if last else "(empty)")


@contextlib.contextmanager
def _locked(path: Path):
    """Serialise up/down (other test modules may call them too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------
# mounts

def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below path in our mount namespace, deepest first."""
    prefix = str(path).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].encode().decode("unicode_escape")
        if mnt == str(path) or mnt.startswith(prefix):
            found.append(mnt)
    return sorted(set(found), key=len, reverse=True)


def _unmount_all(path: Path) -> None:
    for mnt in _mounts_under(path):
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
    left = _mounts_under(path)
    if left:
        raise SandboxError(f"could not unmount {left[0]}")


def _remove_tree(path: Path) -> None:
    """rm -rf that never descends into a mount (e.g. a leftover /proc)."""
    if path.exists() or path.is_symlink():
        _unmount_all(path)
        shutil.rmtree(path)
