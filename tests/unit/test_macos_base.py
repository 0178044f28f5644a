"""Role base on macOS (roles/base/, its backend roles/base/macos.py) on recorded facts of a macOS 15 Apple-silicon host: the
sshd drop-in checked before it goes live, the Application Firewall, automatic security updates,
power settings and FileVault's state. Never run on a Mac."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest

from openclaw_kit.platform import System
from openclaw_kit.settings import SettingsError, validate_hosts
from openclaw_kit.templates import render
from roles.base import base
from roles.base import macos as role
from roles.base.sshd import SSHD_CANDIDATE, SSHD_DROPIN_DIR, SSHD_DROPIN_NAME, sshd_dropin
from tests.unit.fake_host import ENV
from tests.unit.macos_host import FRESH, file_responses, recorded, run_role

GOOD = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}
DROPIN = f"{SSHD_DROPIN_DIR}/{SSHD_DROPIN_NAME}"


def settings(**data):
    return validate_hosts({"mini": {**GOOD, **data}}, ENV, {"mini": System("Darwin", "macOS", 15, arch="arm64")})["mini"]


def names(planned) -> list[str]:
    return [name.removeprefix("base | ") for name, _ in planned]


def converged(s) -> dict:
    return {
        **FRESH,
        "socketfilterfw --getglobalstate": recorded("socketfilterfw-on.txt"),
        "com.apple.SoftwareUpdate AutomaticCheckEnabled": [f"{key} 1" for key in role.UPDATE_KEYS],
        "pmset -g": recorded("pmset-g.txt").replace("autorestart          0", "autorestart          1")
        .replace("disksleep            10", "disksleep            0").replace("sleep                1", "sleep                0")
        .replace("Restart After Freeze: Off", "Restart After Freeze: On"),
        **file_responses({DROPIN: sshd_dropin(s, role.SSHD_TEMPLATE)}, {}),
    }


FIREWALL = "Application Firewall on, in stealth mode (no answer to pings and probes of closed ports)"


def test_a_fresh_mac_gets_sshd_the_application_firewall_updates_and_power_settings():
    planned = run_role(base, settings(), FRESH)
    sshd = f"base | sshd drop-in: check it with sshd -t, then put it in place at {DROPIN}"
    assert planned[:-1] == [
        (f"base | {FIREWALL}", [f"{role.SOCKETFILTERFW} --setglobalstate on", f"{role.SOCKETFILTERFW} --setstealthmode on"]),
        ("base | Automatic security updates on (AutomaticDownload, CriticalUpdateInstall, ConfigDataInstall)", [
            f"defaults write {role.SOFTWARE_UPDATE} {key} -bool true"
            for key in ("AutomaticDownload", "CriticalUpdateInstall", "ConfigDataInstall")]),
        ("base | Power settings for a server: sleep 0, disksleep 0, autorestart 1, restartfreeze on", [
            role.power_script({"sleep": "0", "disksleep": "0", "autorestart": "1", "restartfreeze": "on"}).rstrip("\n")]),
    ]
    # The same operation as on Linux (roles/base/__init__.py), without a reload: launchd starts sshd per connection.
    assert planned[-1][0] == sshd
    commands = planned[-1][1]
    check = next(i for i, c in enumerate(commands) if "sshd -t" in c)
    promote = next(i for i, c in enumerate(commands) if c.startswith("install -d -m 755 -o root -g wheel"))
    assert check < promote and f"{SSHD_CANDIDATE}/{SSHD_DROPIN_NAME}" in commands[check]
    script = planned[2][1][0]
    assert "pmset -a autorestart 1 " in script and "systemsetup -setrestartfreeze on " in script and "womp" not in script


def test_a_converged_mac_plans_nothing():
    s = settings()
    assert run_role(base, s, converged(s)) == []


def test_a_drifted_mac_gets_only_what_drifted_put_back():
    s = settings()
    responses = converged(s)
    responses["socketfilterfw --getglobalstate"] = "Firewall is enabled. (State = 1)\nFirewall stealth mode is off"
    responses["pmset -g"] = responses["pmset -g"].replace("womp                 1", "womp                 0")
    assert run_role(base, s, responses) == [
        (f"base | {FIREWALL}", [f"{role.SOCKETFILTERFW} --setglobalstate on", f"{role.SOCKETFILTERFW} --setstealthmode on"]),
        ("base | Power settings for a server: womp 1", [role.power_script({"womp": "1"}).rstrip("\n")]),
    ]


# Stand-ins: pmset keeps what it is set to in $STATE/pmset, except the settings named in $STATE/ignored
# (as some models ignore autorestart); systemsetup answers Off for ever when $STATE/freeze-ignored exists.
PMSET = """#!/bin/sh
if [ "$1" = -a ]; then
  grep -qx "$2" "$STATE/ignored" 2>/dev/null || echo " $2 $3" >> "$STATE/pmset"
else
  echo "System-wide power settings:"; echo "Currently in use:"; cat "$STATE/pmset"
fi
"""
SYSTEMSETUP = """#!/bin/sh
case "$1" in
-setrestartfreeze) [ -e "$STATE/freeze-ignored" ] || echo On > "$STATE/freeze" ;;
-getrestartfreeze) echo "Restart After Freeze: $(cat "$STATE/freeze" 2>/dev/null || echo Off)" ;;
esac
"""


def run_power_script(tmp_path, wanted: dict, *, ignored=(), freeze_ignored=False):
    state, bin_dir = tmp_path / "state", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    (state / "pmset").write_text("")
    (state / "ignored").write_text("".join(f"{key}\n" for key in ignored))
    if freeze_ignored:
        (state / "freeze-ignored").touch()
    for name, text in {"pmset": PMSET, "systemsetup": SYSTEMSETUP}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    not_kept = tmp_path / "db" / "not-kept"
    script = render("base", "macos/power-settings.sh.j2", settings=wanted, not_kept=str(not_kept))
    run = subprocess.run([shutil.which("dash") or "sh", "-c", script], capture_output=True, text=True, timeout=30,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(state)})
    return run, not_kept.read_text().splitlines() if not_kept.exists() else []


def test_power_settings_a_mac_keeps_are_not_recorded(tmp_path):
    run, not_kept = run_power_script(tmp_path, role.POWER)
    assert run.returncode == 0 and run.stderr == "" and not_kept == []


def test_power_settings_a_mac_does_not_keep_are_accepted_recorded_and_reported(tmp_path):
    run, not_kept = run_power_script(tmp_path, role.POWER, ignored=["autorestart"], freeze_ignored=True)
    assert run.returncode == 0 and not_kept == ["autorestart", "restartfreeze"]
    assert "this Mac did not keep autorestart 1 (read back after setting it); accepted as it is" in run.stderr
    assert "this Mac did not keep restartfreeze on" in run.stderr


def test_a_mac_that_did_not_keep_autorestart_and_restartfreeze_is_converged_and_told_so(caplog):
    # The published macOS 13 pmset lists no autorestart: a model without it. Once recorded, not applied again.
    s = settings()
    responses = converged(s)
    responses["pmset -g"] = (recorded("pmset-g-published-ventura.txt").replace(" sleep                1", " sleep                0")
                             .replace("disksleep            10", "disksleep            0") + "\nRestart After Freeze: Off\n")
    assert names(run_role(base, s, responses)) == ["Power settings for a server: autorestart 1, restartfreeze on"]
    responses[f"cat {role.NOT_KEPT}"] = "autorestart\nrestartfreeze"
    with caplog.at_level(logging.WARNING, logger="pyinfra"):
        assert run_role(base, s, responses) == []
    assert "this Mac did not keep autorestart 1 when the kit set it (read back" in caplog.text
    assert "accepted as it is (restartfreeze off) and not applied again" in caplog.text


def test_the_drop_in_has_no_debian_only_keyword_and_keys_only():
    text = sshd_dropin(settings(sshd_allow_users=["admin"], ssh_user="admin"), role.SSHD_TEMPLATE)
    assert "DebianBanner" not in text
    for line in ("PasswordAuthentication no", "KbdInteractiveAuthentication no", "AuthenticationMethods publickey",
                 "MaxAuthTries 3", "AllowUsers admin", "Port 22"):
        assert line in text.splitlines()


def test_filevault_on_is_reported_with_what_to_do(caplog):
    from pyinfra.context import ctx_host

    class Named:
        name = "mini"
    with ctx_host.use(Named()), caplog.at_level(logging.INFO, logger="pyinfra"):
        role.report_filevault(recorded("fdesetup-status.txt").strip())
    assert "FileVault is on" in caplog.text and "fdesetup authrestart" in caplog.text


def test_the_facts_parse_the_recorded_outputs():
    power = role.PowerSettings().process(recorded("pmset-g.txt").splitlines())
    assert (power["sleep"], power["autorestart"], power["womp"], power["restartfreeze"]) == ("1", "0", "1", "off")
    assert role.FirewallState().process(recorded("socketfilterfw-fresh.txt").splitlines()) == {"enabled": False, "stealth": False}
    assert role.FirewallState().process(recorded("socketfilterfw-on.txt").splitlines()) == {"enabled": True, "stealth": True}
    assert role.UpdateSettings().process(recorded("softwareupdate-fresh.txt").splitlines()) == {"AutomaticCheckEnabled"}


def test_the_facts_parse_published_outputs():
    # A real `pmset -g` (macOS 13): a value may be followed by why it does not apply yet.
    power = role.PowerSettings().process(recorded("pmset-g-published-ventura.txt").splitlines())
    assert (power["sleep"], power["disksleep"], power["womp"]) == ("1", "10", "1") and "autorestart" not in power
    # A firewall blocking all incoming connections is on (State = 2, published for macOS 15).
    assert role.FirewallState().process(recorded("socketfilterfw-block-all.txt").splitlines()) == {
        "enabled": True, "stealth": True}
    assert role.FirewallState().process(["Firewall is enabled. (State = 1)", "Stealth mode enabled"])["stealth"]


def test_a_mac_blocking_all_incoming_connections_keeps_its_firewall_setting():
    s = settings()
    responses = {**converged(s), "socketfilterfw --getglobalstate": recorded("socketfilterfw-block-all.txt")}
    assert run_role(base, s, responses) == []


def test_another_ssh_port_is_refused_on_a_mac():
    with pytest.raises(SettingsError) as caught:
        settings(sshd_port=2222)
    assert caught.value.problems == ["host mini: sshd_port = 2222: on macOS sshd listens where launchd's "
                                     "com.openssh.sshd socket does (22); the kit does not move it"]
