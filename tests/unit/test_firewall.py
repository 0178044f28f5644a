"""Role firewall: the rendered ruleset (checked by this machine's nft when it can), the lockout
guard, the in-sync decision, and the firewall settings' validation rules."""

import hashlib
import os
import re
import shutil
import subprocess

import pytest

from openclaw_kit.settings import HostSettings, validate_hosts
from openclaw_kit.templates import render
from roles.firewall import SshConnection, lockout_problem
from roles.firewall.nftables import APPLY, FirewallStatus, in_sync, ruleset, script_data
from tests.unit.fake_host import ENV, one_problem

GOOD = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}

COMBINATIONS = {
    "minimal": {},
    "public interface, v4 and v6 admins": {"public_interface": "eth0", "admin_cidrs": ["203.0.113.0/24", "2001:db8::/48"], "sshd_port": 2222},
    "private network": {
        "public_interface": "eth0", "private_interface": "wg0", "private_cidrs": ["10.8.0.0/24", "fd00:8::/64"],
        "private_allowed_ports": [9100, 22],
    },
    "private interface only": {"private_interface": "eth1", "private_cidrs": ["192.168.10.0/24"], "private_allowed_ports": [5432]},
    "ssh_cidrs": {"ssh_cidrs": ["0.0.0.0/0", "::/0"]},
    "restricted egress": {"egress": "restricted", "egress_allowed_ports": [587, 993], "proxy": "http://10.0.0.1:3128", "gateway_port": 20000},
}


def settings(**data) -> HostSettings:
    return validate_hosts({"gw1": {**GOOD, **data}}, ENV)["gw1"]


def nft_check(text: str, tmp_path) -> subprocess.CompletedProcess | None:
    """`nft -c -f` in a scratch network namespace (the machine's own ruleset is never read or touched)."""
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        return None
    path = tmp_path / "ruleset.nft"
    path.write_text(text)
    return subprocess.run(["unshare", "-n", "nft", "-c", "-f", str(path)], capture_output=True, text=True)


def input_rules(text: str) -> list[str]:
    chain = text.split("chain input {", 1)[1].split("\n\t}", 1)[0]
    return [line.strip() for line in chain.splitlines() if line.strip() and not line.strip().startswith("#")]


@pytest.mark.parametrize("data", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_every_combination_is_accepted_by_nft(data, tmp_path):
    run = nft_check(ruleset(settings(**data)), tmp_path)
    if run is None:
        pytest.skip("needs root, nft and unshare to check the ruleset")
    assert run.returncode == 0, run.stderr


def test_nft_check_catches_a_broken_ruleset(tmp_path):
    # The check above must be able to fail.
    run = nft_check(ruleset(settings()).replace("policy drop;", "policy maybe;", 1), tmp_path)
    if run is None:
        pytest.skip("needs root, nft and unshare to check the ruleset")
    assert run.returncode != 0 and "policy" in run.stderr


@pytest.mark.parametrize("data", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_one_kit_table_replaced_atomically(data):
    text = ruleset(settings(**data))
    tables = re.findall(r"^(table|delete table|flush \w+)\s+(\S+ \S+)", text, flags=re.M)
    # Declare (so the delete works on a fresh host), delete, define: one transaction, one table.
    assert tables == [("table", "inet openclaw_kit"), ("delete table", "inet openclaw_kit"), ("table", "inet openclaw_kit")]
    assert "flush ruleset" not in text
    assert "type filter hook input priority filter; policy drop;" in text


@pytest.mark.parametrize("data", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_gateway_port_dropped_before_anything_could_accept_it(data):
    s = settings(**data)
    rules = input_rules(ruleset(s))
    assert rules[1] == f'iif != "lo" meta l4proto {{ tcp, udp }} th dport {s.gateway_port} counter drop'
    assert not any("accept" in rule for rule in rules[:2])
    assert all(str(s.gateway_port) not in rule for rule in rules if "accept" in rule)


def test_ssh_only_from_admin_cidrs_on_the_public_interface():
    s = settings(**COMBINATIONS["public interface, v4 and v6 admins"])
    rules = input_rules(ruleset(s))
    ssh = [rule for rule in rules if "dport 2222" in rule]
    assert ssh == [
        'iifname "eth0" tcp dport 2222 ip saddr { 203.0.113.0/24 } accept',
        'iifname "eth0" tcp dport 2222 ip6 saddr { 2001:db8::/48 } accept',
    ]
    assert not any("dport 22 " in rule for rule in rules)
    assert 'iifname "eth0" tcp dport { 80, 443 } accept' in rules


def test_ssh_also_from_ssh_cidrs_overlaps_merged():
    # Merged here as nft would merge them, so the live table lists as it was loaded.
    s = settings(public_interface="eth0", admin_cidrs=["203.0.113.7/32", "198.51.100.0/25", "2001:db8::/48"],
                 ssh_cidrs=["203.0.113.0/24", "198.51.100.128/25", "2001:db8:5::/48"])
    ssh = [rule for rule in input_rules(ruleset(s)) if "dport 22 " in rule]
    assert ssh == [
        'iifname "eth0" tcp dport 22 ip saddr { 198.51.100.0/24, 203.0.113.0/24 } accept',
        'iifname "eth0" tcp dport 22 ip6 saddr { 2001:db8::/48, 2001:db8:5::/48 } accept',
    ]


def test_the_live_table_lists_as_it_was_loaded_with_overlapping_ssh_networks(tmp_path):
    # A rollback reloads the table from its own listing; the fingerprint must not change.
    s = settings(admin_cidrs=["10.231.1.1/32"], ssh_cidrs=["10.231.1.0/24"])
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        pytest.skip("needs root, nft and unshare to load the ruleset in a scratch namespace")
    (tmp_path / "ruleset.nft").write_text(ruleset(s))
    listing = "nft -s -t list table inet openclaw_kit"
    script = (f"nft -f {tmp_path / 'ruleset.nft'} && {listing} > {tmp_path / 'first'} && "
              f"{{ echo 'table inet openclaw_kit {{}}'; echo 'delete table inet openclaw_kit'; nft list table inet openclaw_kit; }} > {tmp_path / 'again.nft'} && "
              f"nft -f {tmp_path / 'again.nft'} && {listing} > {tmp_path / 'second'}")
    run = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "first").read_text() == (tmp_path / "second").read_text()


def test_without_a_public_interface_ssh_and_web_match_any_interface_but_the_private_one():
    rules = input_rules(ruleset(settings(**COMBINATIONS["private interface only"])))
    assert 'iifname != "eth1" tcp dport 22 ip saddr { 203.0.113.0/24 } accept' in rules
    assert 'iifname != "eth1" tcp dport { 80, 443 } accept' in rules
    assert 'iifname "eth1" ip saddr { 192.168.10.0/24 } meta l4proto { tcp, udp } th dport { 443, 5432 } accept' in rules
    minimal = input_rules(ruleset(settings()))
    assert "tcp dport 22 ip saddr { 203.0.113.0/24 } accept" in minimal


def test_private_network_reaches_only_its_ports():
    rules = input_rules(ruleset(settings(**COMBINATIONS["private network"])))
    private = [rule for rule in rules if rule.startswith('iifname "wg0"')]
    assert private == [
        'iifname "wg0" ip saddr { 10.8.0.0/24 } meta l4proto { tcp, udp } th dport { 22, 443, 9100 } accept',
        'iifname "wg0" ip6 saddr { fd00:8::/64 } meta l4proto { tcp, udp } th dport { 22, 443, 9100 } accept',
    ]
    # Without ports of its own, the private network still reaches nginx (operators: role nginx).
    assert 'iifname "wg0" ip saddr { 10.8.0.0/24 } meta l4proto { tcp, udp } th dport { 443 } accept' in input_rules(
        ruleset(settings(**{**COMBINATIONS["private network"], "private_allowed_ports": []})))


def test_bans_drop_early_and_ipv6_neighbour_discovery_stays_open():
    text = ruleset(settings())
    rules = input_rules(text)
    assert "set banned_v4 { type ipv4_addr; flags timeout; }" in text
    assert "set banned_v6 { type ipv6_addr; flags timeout; }" in text
    ban = rules.index("ip saddr @banned_v4 drop")
    assert ban < rules.index("ct state { established, related } accept")
    nd = next(rule for rule in rules if "nd-neighbor-solicit" in rule)
    assert "nd-neighbor-advert" in nd and "limit rate" not in nd and nd.endswith("accept")
    assert any(rule.startswith("icmp type echo-request limit rate") for rule in rules)
    assert rules[-1].startswith("limit rate") and 'log prefix "openclaw-kit drop in: "' in rules[-1]


def test_egress_open_by_default_and_restricted_on_request():
    assert "hook output" not in ruleset(settings())
    text = ruleset(settings(**COMBINATIONS["restricted egress"]))
    output = text.split("chain output {", 1)[1]
    assert "hook output priority filter; policy drop;" in output
    for needed in ('oif "lo" accept', "ct state { established, related } accept", "th dport 53 accept",
                   "udp dport 123 accept", "tcp dport { 80, 443 } accept", "tcp dport 3128 accept", "tcp dport { 587, 993 } accept"):
        assert needed in output, needed


def test_the_apply_script_is_valid_shell(tmp_path):
    script = tmp_path / "apply"
    script.write_text(render("firewall", "openclaw-kit-firewall-apply.j2", **script_data()))
    run = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    text = script.read_text()
    assert f"SELF={APPLY}" in text and "nft -c -f" in text and "--on-active=" in text


# --- deciding whether to apply --------------------------------------------------------------------


def test_in_sync_needs_persisted_file_record_and_live_table_to_agree():
    rules = ruleset(settings())
    sha = hashlib.sha256(rules.encode()).hexdigest()
    good = {"persisted": sha, "marker": f"{sha} live1", "live": "live1"}
    assert in_sync(good, rules)
    assert not in_sync(None, rules), "no nft on the host yet"
    assert not in_sync({**good, "live": "live2"}, rules), "a hand edit to the live table"
    assert not in_sync({**good, "persisted": "0" * 64}, rules), "an edited persisted file"
    assert not in_sync({**good, "marker": ""}, rules), "never confirmed"
    assert not in_sync(good, rules.replace("18789", "18790")), "new settings"


def test_facts_parse_their_output():
    assert FirewallStatus().process(["persisted abc", "marker abc def", "live def"]) == {"persisted": "abc", "marker": "abc def", "live": "def"}
    assert SshConnection().process(["203.0.113.9 51234 198.51.100.1 22"]) == ("203.0.113.9", "198.51.100.1", 22)
    assert SshConnection().process([""]) is None


# --- lockout guard 1 ---------------------------------------------------------------------------------


def test_a_deploy_from_an_admin_network_on_the_ssh_port_passes():
    s = settings(admin_cidrs=["203.0.113.0/24", "2001:db8::/48"])
    assert lockout_problem(s, ("203.0.113.9", "198.51.100.1", 22)) is None
    assert lockout_problem(s, ("2001:db8::5", "198.51.100.1", 22)) is None
    assert lockout_problem(s, ("::ffff:203.0.113.9", "198.51.100.1", 22)) is None


def test_a_deploy_from_outside_admin_cidrs_is_refused_naming_address_and_cidrs():
    problem = lockout_problem(settings(), ("198.51.100.7", "198.51.100.1", 22))
    assert "198.51.100.7" in problem and "['203.0.113.0/24']" in problem and "lock" in problem


def test_a_deploy_on_another_port_than_sshd_port_is_refused():
    problem = lockout_problem(settings(sshd_port=2222), ("203.0.113.9", "198.51.100.1", 22))
    assert "port 22" in problem and "sshd_port = 2222" in problem


def test_an_unknown_connection_is_refused():
    assert "SSH_CONNECTION" in lockout_problem(settings(), None)


# --- settings ------------------------------------------------------------------------------------------


def test_firewall_defaults():
    s = settings()
    assert s.egress == "open" and s.egress_allowed_ports == []


@pytest.mark.parametrize(("data", "setting", "rule"), [
    ({"egress": "closed"}, "egress", "'open' or 'restricted'"),
    ({"egress_allowed_ports": [587]}, "egress_allowed_ports", "only applies with egress: restricted"),
    ({"egress": "restricted", "egress_allowed_ports": [0]}, "egress_allowed_ports[0]", "greater than or equal to 1"),
    ({"private_allowed_ports": [9100]}, "private_allowed_ports", "needs private_cidrs"),
    ({"private_cidrs": ["10.0.0.0/8"], "private_allowed_ports": [18789]}, "private_allowed_ports", "loopback only"),
    ({"public_interface": "eth0", "private_interface": "eth0", "private_cidrs": ["10.0.0.0/8"]}, "private_interface", "also the public_interface"),
])
def test_firewall_settings_rules(data, setting, rule):
    assert rule in one_problem(GOOD, data, setting)
