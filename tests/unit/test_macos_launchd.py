"""openclaw_kit/launchd.py: the reload of a LaunchDaemon for a new plist, run here under dash with a
stand-in launchctl that keeps the old job in the domain for a while, as launchd does after `bootout`
while the job exits (up to its ExitTimeOut). Never run on a Mac."""

from __future__ import annotations

import shutil
import subprocess

from openclaw_kit import launchd
from openclaw_kit.templates import render
from tests.unit.plists import differences, libplist_parse, needs_plistutil

SH = shutil.which("dash") or "sh"

# The old job stays in the domain for $STATE/prints_left more `print`s (each finds it); while it is
# there `bootstrap` fails with launchd's error 5, and also for $STATE/bootstrap_failures more tries.
LAUNCHCTL = """#!/bin/sh
echo "launchctl $*" >> "$STATE/calls"
left() { [ "$(cat "$STATE/$1")" -gt 0 ]; }
count() { left "$1" && echo $(($(cat "$STATE/$1") - 1)) > "$STATE/$1"; }
refuse() { echo "Bootstrap failed: 5: Input/output error" >&2; exit 5; }
case "$1" in
print) count prints_left || { echo "Could not find service \\"${2#*/}\\" in domain for system" >&2; exit 113; } ;;
bootout) ;;
bootstrap) if left prints_left || count bootstrap_failures; then refuse; fi ;;
*) exit 1 ;;
esac
"""


def reload(tmp_path, *, prints_left: int, bootstrap_failures: int = 0, exit_timeout: int = 0):
    state, bin_dir = tmp_path / "state", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    (state / "prints_left").write_text(str(prints_left))
    (state / "bootstrap_failures").write_text(str(bootstrap_failures))
    for name, text in {"launchctl": LAUNCHCTL, "sleep": "#!/bin/sh\necho \"sleep $*\" >> \"$STATE/calls\"\n"}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    pending = tmp_path / "pending" / "x.job"
    script = render("launchd", "reload.sh.j2", label="x.job", plist="/Library/LaunchDaemons/x.job.plist",
                    pending=str(pending), wait_limit=exit_timeout + launchd.RELOAD_MARGIN)
    run = subprocess.run([SH, "-c", script], capture_output=True, text=True, timeout=60,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(state)})
    return run, (state / "calls").read_text().splitlines(), pending


def test_the_reload_waits_until_the_old_job_has_left_then_bootstraps(tmp_path):
    run, calls, pending = reload(tmp_path, prints_left=3)
    assert run.returncode == 0, run.stderr
    assert calls == ["launchctl bootout system/x.job", *["launchctl print system/x.job", "sleep 1"] * 3,
                     "launchctl print system/x.job", "launchctl bootstrap system /Library/LaunchDaemons/x.job.plist"]
    assert not pending.exists()


def test_a_bootstrap_refused_while_the_job_leaves_is_tried_again(tmp_path):
    run, calls, pending = reload(tmp_path, prints_left=0, bootstrap_failures=2)
    assert run.returncode == 0, run.stderr
    assert calls.count("launchctl bootstrap system /Library/LaunchDaemons/x.job.plist") == 3 and not pending.exists()


def test_a_job_that_does_not_leave_fails_the_reload_saying_so_and_the_next_deploy_reloads(tmp_path):
    run, calls, pending = reload(tmp_path, prints_left=10_000)
    assert run.returncode == 1
    assert calls.count("launchctl print system/x.job") == launchd.RELOAD_MARGIN + 1 and not any("bootstrap" in c for c in calls)
    assert "x.job was still loaded 30s after launchctl bootout; it runs with its old plist" in run.stderr
    assert pending.exists()  # the next deploy sees the marker and reloads again


def test_a_bootstrap_that_keeps_failing_says_the_job_is_not_loaded(tmp_path):
    run, calls, pending = reload(tmp_path, prints_left=0, bootstrap_failures=5)
    assert run.returncode == 1 and pending.exists()
    assert ("launchctl bootstrap system /Library/LaunchDaemons/x.job.plist failed 3 times (Bootstrap failed: 5: "
            "Input/output error); x.job is NOT loaded (not running)") in run.stderr


def test_the_wait_is_bounded_by_the_plists_exit_timeout_plus_a_margin():
    assert "wait_limit=360\n" in launchd.reload_script("ai.openclaw.gateway", {"ExitTimeOut": 330})
    assert "wait_limit=50\n" in launchd.reload_script("org.openclaw-kit.firewall", {})  # launchd's default 20 s


@needs_plistutil
def test_every_daemon_plist_reads_the_same_with_libplist_as_the_dict_it_was_written_from():
    from roles.firewall import pf
    from roles.openclaw import launchd as gateway
    from tests.unit.test_macos_gateway import settings
    for plist in (gateway.gateway_plist(settings()), pf.boot_plist()):
        assert differences(libplist_parse(launchd.plist_text(plist)), plist) == [], plist["Label"]
