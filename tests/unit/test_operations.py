"""The kit's own operations as pyinfra tests its operations: recorded facts in, exact commands out."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.context import ctx_host

from openclaw_kit.operations import check_then_promote_commands, checked_config, promote_files_command

JAIL = "[sshd]\nenabled = true\n"
FILTER = "[Definition]\nfailregex = ^x$\n"
FILES = {"jail.d/kit.conf": JAIL, "filter.d/kit.conf": FILTER}
ARGS = dict(files=FILES, live_dir="/etc/fail2ban", candidate_dir="/var/lib/kit/candidate",
            check="fail2ban-client -c /var/lib/kit/candidate -t", rejected="fail2ban rejected it")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class RecordedHost:
    """A host whose facts are recorded: {(fact name, path): value}; what the operation asks is noted."""

    name = "gw1"

    def __init__(self, facts: dict):
        self.facts = facts
        self.noops: list[str] = []

    def get_fact(self, fact, **kwargs):
        return self.facts.get((fact.__name__, kwargs.get("path")))

    def get_temp_filename(self, hash_key=None, **kwargs):
        return f"/tmp/pyinfra-{sha(str(hash_key))[:8]}"

    def noop(self, description: str) -> None:
        self.noops.append(description)


def live(path: str, content: str | None, user="root", group="root", mode=644) -> dict:
    """What PlacedFile answers for the live file: its stat and sha1 (None: missing)."""
    directory = {"user": "root", "group": "root", "mode": 755}
    if content is None:
        return {("PlacedFile", path): {"file": None, "sha1": None, "directory": directory}}
    return {("PlacedFile", path): {"file": {"user": user, "group": group, "mode": mode},
                                   "sha1": hashlib.sha1(content.encode()).hexdigest(), "directory": directory}}


def commands(facts: dict, **overrides) -> tuple[list, RecordedHost]:
    host = RecordedHost(facts)
    with ctx_host.use(host):
        produced = list(checked_config._inner(**{**ARGS, **overrides}))
    rendered = []
    for command in produced:
        if isinstance(command, FileUploadCommand):
            rendered.append(("upload", command.src.read().decode(), command.dest))
        else:
            assert isinstance(command, StringCommand)
            rendered.append(command.get_raw_value())
    return rendered, host


def test_live_files_with_the_content_owner_and_mode_are_a_noop():
    facts = {**live("/etc/fail2ban/jail.d/kit.conf", JAIL), **live("/etc/fail2ban/filter.d/kit.conf", FILTER)}
    produced, host = commands(facts)
    assert produced == [] and host.noops == ["/etc/fail2ban: the live configuration is the rendered one"]


@pytest.mark.parametrize("drift", ["missing", "content", "mode", "owner"])
def test_any_live_file_that_differs_writes_checks_and_promotes_all(drift):
    changed = {"missing": live("/etc/fail2ban/filter.d/kit.conf", None),
               "content": live("/etc/fail2ban/filter.d/kit.conf", "edited by hand\n"),
               "mode": live("/etc/fail2ban/filter.d/kit.conf", FILTER, mode=666),
               "owner": live("/etc/fail2ban/filter.d/kit.conf", FILTER, user="admin")}[drift]
    produced, _ = commands({**live("/etc/fail2ban/jail.d/kit.conf", JAIL), **changed})
    assert produced == [
        "mkdir -p /var/lib/kit/candidate/filter.d /var/lib/kit/candidate/jail.d",
        ("upload", JAIL, "/var/lib/kit/candidate/jail.d/kit.conf"),
        ("upload", FILTER, "/var/lib/kit/candidate/filter.d/kit.conf"),
        "chown root:root /var/lib/kit/candidate/jail.d/kit.conf /var/lib/kit/candidate/filter.d/kit.conf && "
        "chmod 644 /var/lib/kit/candidate/jail.d/kit.conf /var/lib/kit/candidate/filter.d/kit.conf",
        "( fail2ban-client -c /var/lib/kit/candidate -t\n) || { echo 'fail2ban rejected it' >&2; exit 1; }",
        "cp -p /var/lib/kit/candidate/jail.d/kit.conf /etc/fail2ban/jail.d/kit.conf.openclaw-kit-new && "
        "mv -f /etc/fail2ban/jail.d/kit.conf.openclaw-kit-new /etc/fail2ban/jail.d/kit.conf && "
        "cp -p /var/lib/kit/candidate/filter.d/kit.conf /etc/fail2ban/filter.d/kit.conf.openclaw-kit-new && "
        "mv -f /etc/fail2ban/filter.d/kit.conf.openclaw-kit-new /etc/fail2ban/filter.d/kit.conf",
    ]


def test_force_promotes_an_unchanged_file_and_promote_replaces_the_default():
    facts = {**live("/etc/fail2ban/jail.d/kit.conf", JAIL, group="svc", mode=640)}
    produced, host = commands(facts, files={"jail.d/kit.conf": JAIL}, group="svc", mode="640", force=True,
                              promote="merge-and-move")
    assert host.noops == []
    assert produced[2] == "chown root:svc /var/lib/kit/candidate/jail.d/kit.conf && chmod 640 /var/lib/kit/candidate/jail.d/kit.conf"
    assert produced[-1] == "merge-and-move"


def run_steps(steps: list[str]) -> subprocess.CompletedProcess:
    """The steps as pyinfra runs an operation's commands: one after another, the first failure ends it."""
    for step in steps:
        run = subprocess.run(["sh", "-c", step], capture_output=True, text=True)
        if run.returncode != 0:
            return run
    return run


@pytest.mark.parametrize("passes", [True, False])
def test_a_rejected_candidate_leaves_the_live_files_and_says_why(tmp_path, passes):
    live_dir, candidate_dir = tmp_path / "etc", tmp_path / "candidate"
    (live_dir / "conf.d").mkdir(parents=True)
    (candidate_dir / "conf.d").mkdir(parents=True)
    (live_dir / "conf.d/kit.conf").write_text("old\n")
    (candidate_dir / "conf.d/kit.conf").write_text("new\n")
    # A check script that exits by itself (as sshd's does) must still get the rejection message.
    check = "echo 'checker: line 1 is wrong' >&2; exit 3" if not passes else "grep -q new " + str(candidate_dir / "conf.d/kit.conf")
    run = run_steps(check_then_promote_commands(check, "kit: rejected, the old one stays", promote_files_command(["conf.d/kit.conf"], str(live_dir), str(candidate_dir))))
    if passes:
        assert run.returncode == 0 and (live_dir / "conf.d/kit.conf").read_text() == "new\n"
    else:
        assert run.returncode == 1 and run.stderr == "checker: line 1 is wrong\nkit: rejected, the old one stays\n"
        assert (live_dir / "conf.d/kit.conf").read_text() == "old\n"
    assert sorted(p.name for p in (live_dir / "conf.d").iterdir()) == ["kit.conf"], "no leftovers beside the live file"


# A stand-in systemctl: `restart` fails while the sandbox drop-in exists when told to (REFUSE), with
# the unit's Result in RESULT; `start` fails too unless systemd merely could not spawn it once.
FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "$LOG"
if [ "$1" = show ]; then echo "$RESULT"; exit 0; fi
if [ "$1" = restart ] && [ -n "$REFUSE" ] && [ -e "$DROPIN" ]; then exit 1; fi
if [ "$1" = start ] && [ "$RESULT" != resources ]; then exit 1; fi
exit 0
"""


@pytest.mark.parametrize("refuse, result", [(False, "success"), (True, "exit-code"), (True, "resources"),
                                            (True, "success")],
                         ids=["starts", "refuses", "not spawned once", "already started again by its socket"])
def test_a_service_that_will_not_start_in_its_sandbox_runs_without_it(tmp_path, refuse, result):
    from openclaw_kit.operations import restart_in_sandbox_commands, sandbox_dropin

    bin_dir, unit_dir = tmp_path / "bin", tmp_path / "system"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bin_dir / "systemctl").chmod(0o755)
    dropin = Path(sandbox_dropin("nginx.service", str(unit_dir)))
    dropin.parent.mkdir(parents=True)
    dropin.write_text("[Service]\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(tmp_path / "log"), "DROPIN": str(dropin),
           "REFUSE": "1" if refuse else "", "RESULT": result}
    run = subprocess.run(["sh", "-c", *restart_in_sandbox_commands("nginx.service", str(unit_dir))], env=env,
                         capture_output=True, text=True)
    calls = (tmp_path / "log").read_text().splitlines()
    if refuse and result == "resources":
        assert run.returncode == 0 and dropin.exists()
        assert calls == ["daemon-reload", "restart nginx.service", "show -P Result nginx.service",
                         "reset-failed nginx.service", "start nginx.service"]
    elif refuse and result == "success":
        assert run.returncode == 0 and dropin.exists()
        assert calls == ["daemon-reload", "restart nginx.service", "show -P Result nginx.service",
                         "is-active --quiet nginx.service"]
    elif refuse:
        assert run.returncode == 1 and "did not start in its systemd sandbox" in run.stderr
        assert not dropin.exists()
        assert calls == ["daemon-reload", "restart nginx.service", "show -P Result nginx.service", "daemon-reload",
                         "restart nginx.service"]
    else:
        assert run.returncode == 0 and dropin.exists() and calls == ["daemon-reload", "restart nginx.service"]
