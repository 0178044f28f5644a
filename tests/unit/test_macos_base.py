"""Role base on macOS (roles/base/, its backend roles/base/macos.py) on recorded facts of a macOS 15 Apple-silicon host: the
sshd drop-in checked before it goes live, the Application Firewall, automatic security updates,
power settings and FileVault's state. Never run on a Mac."""

from __future__ import annotations

import logging

import pytest

from openclaw_kit.platform import System
from openclaw_kit.settings import SettingsError, validate_hosts
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


def test_a_fresh_mac_gets_sshd_the_application_firewall_updates_and_power_settings():
    planned = run_role(base, settings(), FRESH)
    assert names(planned) == [
        "Application Firewall on, in stealth mode (no answer to pings and probes of closed ports)",
        "Automatic security updates on (AutomaticDownload, CriticalUpdateInstall, ConfigDataInstall)",
        "Power settings for a server: sleep 0, disksleep 0, autorestart 1",
        "Restart after a freeze",
        # The same operation as on Linux (roles/base/__init__.py), without a reload: launchd starts sshd per connection.
        f"sshd drop-in: check it with sshd -t, then put it in place at {DROPIN}",
    ]
    commands = dict(planned)
    sshd = commands[f"base | sshd drop-in: check it with sshd -t, then put it in place at {DROPIN}"]
    check = next(i for i, c in enumerate(sshd) if "sshd -t" in c)
    promote = next(i for i, c in enumerate(sshd) if c.startswith("install -d -m 755 -o root -g wheel"))
    assert check < promote and f"{SSHD_CANDIDATE}/{SSHD_DROPIN_NAME}" in sshd[check]
    assert commands["base | Power settings for a server: sleep 0, disksleep 0, autorestart 1"] == [
        "pmset -a sleep 0 disksleep 0 autorestart 1"]
    assert commands["base | Application Firewall on, in stealth mode (no answer to pings and probes of closed ports)"] == [
        f"{role.SOCKETFILTERFW} --setglobalstate on", f"{role.SOCKETFILTERFW} --setstealthmode on"]


def test_a_converged_mac_plans_nothing():
    s = settings()
    assert run_role(base, s, converged(s)) == []


def test_a_drifted_mac_gets_only_what_drifted_put_back():
    s = settings()
    responses = converged(s)
    responses["socketfilterfw --getglobalstate"] = "Firewall is enabled. (State = 1)\nFirewall stealth mode is off"
    responses["pmset -g"] = responses["pmset -g"].replace("womp                 1", "womp                 0")
    assert names(run_role(base, s, responses)) == [
        "Application Firewall on, in stealth mode (no answer to pings and probes of closed ports)",
        "Power settings for a server: womp 1",
    ]


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
