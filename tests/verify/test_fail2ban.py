"""Role fail2ban: running with the kit's jails, the admin networks never banned, bans going into
the kit's nftables sets."""

import ipaddress
import json
import shlex

import pytest

from openclaw_kit.operations import sandbox_dropin
from roles.fail2ban import ACTION, ETC, NGINX_JAILS, SERVICE, config_files
from roles.firewall.nftables import TABLE
from tests.verify.sandboxing import exposure

# systemd-analyze security's exposure the kit's sandbox keeps fail2ban at or under (README: the figures).
EXPOSURE_TARGET = 6.5

# Never banned besides admin_cidrs (the kit's promise; ignoreself adds the host's own addresses).
LOOPBACK = ["127.0.0.0/8", "::1/128"]
JAILS = ["sshd", *[jail["name"] for jail in NGINX_JAILS]]


def client(target, *commands: str) -> list[str]:
    """fail2ban-client's answer to each command, asked in one interactive session: one start of
    the client (a Python program) instead of one per command."""
    script = "".join(f"{command}\n" for command in [*commands, "exit"])
    output = target.host.check_output(f"printf %s {shlex.quote(script)} | fail2ban-client -i 2>&1")
    # A banner, then every answer after its prompt; the last prompt is the one `exit` answered.
    *answers, last = [answer.strip("\n") for answer in output.split("fail2ban> ")[1:]]
    assert len(answers) == len(commands) and not last, output
    # The interactive client exits 0 after a failed command, logging an ERROR (on stderr, so not
    # necessarily next to its answer).
    assert "ERROR" not in output, output
    return answers


def listed(output: str) -> list[str]:
    """The items of fail2ban-client's tree output (`|- item`, `` `- item``)."""
    return [line.split("- ", 1)[1].strip() for line in output.splitlines() if line.lstrip("|` ").strip() and "- " in line[:4]]


def test_fail2ban_installed_running_and_enabled(target):
    for package in ("fail2ban", "python3-systemd"):
        assert target.host.package(package).is_installed, package
    service = target.host.service("fail2ban")
    assert service.is_running and service.is_enabled


def test_the_kit_files_are_live_as_rendered(target):
    for relative, content in config_files(target.settings).items():
        assert target.host.file(f"{ETC}/{relative}").content_string == content, relative


def test_the_kit_jails_are_active(target):
    (status,) = client(target, "status")
    active = [name.strip() for name in status.split("Jail list:", 1)[1].split(",")]
    assert sorted(active) == sorted(JAILS), status


@pytest.mark.parametrize("jail", JAILS)
def test_jail_settings_and_action(target, jail):
    settings = target.settings
    # What fail2ban really uses (an admin's jail.local could widen it), exactly: a wider list would
    # let attackers in those networks go unbanned. fail2ban shows a /32 or /128 as the bare address.
    ignoreip, bantime, findtime, maxretry, actions = client(
        target, *(f"get {jail} {name}" for name in ("ignoreip", "bantime", "findtime", "maxretry", "actions"))
    )
    ignored = sorted(map(str, (ipaddress.ip_network(item) for item in listed(ignoreip))))
    assert ignored == sorted(map(str, (ipaddress.ip_network(c) for c in [*LOOPBACK, *settings.admin_cidrs]))), jail
    assert int(bantime) == settings.fail2ban_bantime_seconds
    assert int(findtime) == settings.fail2ban_findtime_seconds
    factor = next((j.get("maxretry_factor", 1) for j in NGINX_JAILS if j["name"] == jail), 1)
    assert int(maxretry) == settings.fail2ban_maxretry * factor
    # "The jail sshd has the following actions:", then one per line.
    assert actions.strip().splitlines()[1:] == [ACTION]


def test_sshd_jail_reads_the_journal(target):
    # Debian's defaults-debian.conf enables sshd with the auto backend; the kit's systemd wins.
    (journal,) = client(target, "get sshd journalmatch")
    assert "sshd" in journal, journal


def test_bans_go_into_the_kit_sets_and_fail2ban_has_no_table(target):
    for name, kind in (("banned_v4", "ipv4_addr"), ("banned_v6", "ipv6_addr")):
        items = json.loads(target.host.check_output(f"nft -j list set inet {TABLE} {name}"))["nftables"]
        found = next(item["set"] for item in items if "set" in item)
        assert found["type"] == kind and "timeout" in found["flags"]
    tables = target.host.check_output("nft list tables")
    assert "f2b" not in tables, tables


def test_fail2ban_runs_in_its_systemd_sandbox(target):
    assert target.host.file(sandbox_dropin(SERVICE)).is_file
    assert target.host.service("fail2ban").is_running
    assert exposure(target, SERVICE) <= EXPOSURE_TARGET
