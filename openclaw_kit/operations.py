"""Operations of the kit's own, in pyinfra's style."""

from __future__ import annotations

import hashlib
import io
import posixpath
import shlex

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation

from openclaw_kit.placed import PlacedFile
from openclaw_kit.templates import render_command


def sha256(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


@operation()
def checked_config(
    files: dict[str, str],
    live_dir: str,
    candidate_dir: str,
    check: str,
    rejected: str,
    promote: str | None = None,
    user: str = "root",
    group: str = "root",
    mode: str = "644",
    force: bool = False,
):
    """
    Write a new configuration as a candidate, check it on the host, and only then make it live.

    + files: the configuration's content by path relative to ``live_dir``
    + live_dir: where the live files are
    + candidate_dir: where the candidate files are written first (mirroring ``live_dir``)
    + check: shell command that checks the candidate (in ``candidate_dir``) and exits non-zero,
      with the checker's message on stderr, when it is wrong; it must not touch the live files
    + rejected: what the deploy says after the checker's message when the check fails
    + promote: shell command that makes the checked candidate live; by default each candidate file
      replaces its live file atomically (copied beside it, then renamed over it)
    + user, group, mode: owner and mode of the candidate (and so of the live) files
    + force: check and promote even when every live file already has the content (a live
      configuration the kit merges into, whose sameness the caller has decided otherwise)

    A no-op when every live file has its content (sha256), owner and mode. A rejected candidate leaves the
    live files, and so the running service, untouched, and fails the operation. Reload the service
    with ``_if=<this operation>.did_change``.

    **Example:**

    .. code:: python

        promoted = checked_config(
            name="Check the candidate fail2ban configuration, then make it live",
            files={"jail.d/kit.conf": rendered_jail},
            live_dir="/etc/fail2ban",
            candidate_dir="/var/lib/kit/fail2ban-candidate",
            check="fail2ban-client -c /var/lib/kit/fail2ban-candidate -t",
            rejected="fail2ban rejected the new configuration; the running fail2ban keeps the old one",
        )
        systemd.service(name="Reload fail2ban", service="fail2ban", reloaded=True, _if=promoted.did_change)
    """
    if not force and all(
        _in_place(f"{live_dir}/{relative}", content, user, group, mode) for relative, content in files.items()
    ):
        host.noop(f"{live_dir}: the live configuration is the rendered one")
        return

    candidates = [f"{candidate_dir}/{relative}" for relative in files]
    directories = sorted({posixpath.dirname(path) for path in candidates})
    yield StringCommand("mkdir", "-p", *directories)
    for path, content in zip(candidates, files.values(), strict=True):
        # As files.put does: a sudo upload lands in a temporary file first, then moves into place.
        yield FileUploadCommand(io.BytesIO(content.encode()), path, remote_temp_filename=host.get_temp_filename(path))
    yield StringCommand("chown", f"{user}:{group}", *candidates, "&&", "chmod", mode, *candidates)
    if promote is None:
        promote = promote_files_command(list(files), live_dir, candidate_dir)
    for command in check_then_promote_commands(check, rejected, promote):
        yield StringCommand(command)


def _in_place(path: str, content: str, user: str, group: str, mode: str) -> bool:
    placed = host.get_fact(PlacedFile, path=path)  # one command for owner, mode and checksum
    live = placed["file"]
    return (
        bool(live)
        and (live["user"], live["group"], live["mode"]) == (user, group, int(mode))
        and placed["sha1"] == hashlib.sha1(content.encode()).hexdigest()
    )


def check_then_promote_commands(check: str, rejected: str, promote: str) -> list[str]:
    """The shell commands checked_config runs once the candidate is written: the check (in a subshell,
    so a check script's `exit` ends only the check), failing with `rejected`, then the promotion."""
    return [render_command("operations", "check-then-promote.sh.j2", check=check, rejected=rejected), promote]


def promote_files_command(relatives: list[str], live_dir: str, candidate_dir: str) -> str:
    """Each candidate file copied beside its live file, then renamed over it (atomic per file)."""
    q = shlex.quote
    return " && ".join(
        f"cp -p {q(f'{candidate_dir}/{relative}')} {q(f'{live_dir}/{relative}.openclaw-kit-new')} && "
        f"mv -f {q(f'{live_dir}/{relative}.openclaw-kit-new')} {q(f'{live_dir}/{relative}')}"
        for relative in relatives
    )


def sandbox_dropin(service: str, unit_dir: str = "/etc/systemd/system") -> str:
    """Where the kit's systemd sandbox for `service` (nginx.service) lives."""
    return f"{unit_dir}/{service}.d/openclaw-kit-sandbox.conf"


def restart_in_sandbox_commands(service: str, unit_dir: str = "/etc/systemd/system") -> list[str]:
    """Shell that restarts `service` with its new sandbox drop-in; should it not start that way, the
    drop-in is taken away, the service started as it was, and the deploy fails saying so."""
    path = sandbox_dropin(service, unit_dir)
    failed = (f"{service} did not start in its systemd sandbox ({path}, removed again; journalctl -u {service} "
              "says why); it runs without it")
    return [render_command("operations", "restart-in-sandbox.sh.j2", service=service, dropin=path, failed=failed)]


def restart_command(service: str) -> str:
    """Shell that restarts `service`. Should systemd not even spawn it (result `resources`: "Failed to spawn
    executor: No such file or directory", systemd 257 in the sandbox's containers on this cgroup-v1
    machine, right after a reload or daemon-reload; never by hand), it is started once more; a failed
    restart after which something (journald's sockets) already started it again passes if it is
    active. A service that itself fails to start is not tried again."""
    return render_command("operations", "restart.sh.j2", service=service)
