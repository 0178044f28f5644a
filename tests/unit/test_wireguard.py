"""Role wireguard: the private_network/admin_peers rules (per host and across the inventory), the
rendered wg-quick config, the firewall's mesh zone and management: private with its lockout guard."""

import base64
import shutil
import subprocess

import pytest

from openclaw_kit.settings import SettingsError, validate_hosts
from roles.firewall import SshConnection, lockout_problem
from roles.firewall.nftables import ruleset
from roles.wireguard import (
    AddressNetworks,
    KernelWireGuard,
    KeyRotation,
    KitMeshInterfaces,
    WireGuardPublicKey,
    config_text,
    is_public_key,
)
from tests.unit.fake_host import ENV, one_problem
from tests.unit.test_firewall import input_rules, nft_check

GOOD = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}
KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(1, 33))).decode()
MESH = {"cidr": "10.99.0.0/24", "address": "10.99.0.1"}
LAPTOP = {"name": "alice-laptop", "public_key": KEY_A, "address": "10.99.0.100"}


def mesh_host(address: str, **data) -> dict:
    return {**GOOD, "private_network": {**MESH, "address": address}, **data}


def problems(hosts: dict, env=ENV) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        validate_hosts(hosts, env)
    return caught.value.problems


def test_defaults_and_a_good_mesh():
    found = validate_hosts({"gw1": mesh_host("10.99.0.1", admin_peers=[LAPTOP]), "gw2": mesh_host("10.99.0.2", admin_peers=[LAPTOP])}, ENV)
    net = found["gw1"].private_network
    assert (net.port, net.interface, net.endpoint, net.preshared_key) == (51820, "wg0", None, None)
    assert found["gw1"].management == "public"
    assert validate_hosts({"gw1": GOOD}, ENV)["gw1"].private_network is None


@pytest.mark.parametrize("data, setting, rule", [
    ({"private_network": {**MESH, "address": "10.98.0.1"}}, "private_network.address", "must be inside the mesh cidr 10.99.0.0/24"),
    ({"private_network": {**MESH, "address": "10.99.0.0"}}, "private_network.address", "network or broadcast address"),
    ({"private_network": {**MESH, "cidr": "10.99.0.1/24"}}, "private_network.cidr", "no host bits set"),
    ({"private_network": {**MESH, "address": "10.99.0.1/24"}}, "private_network.address", "no prefix length"),
    ({"private_network": {**MESH, "port": 0}}, "private_network.port", "greater than or equal to 1"),
    ({"private_network": {**MESH, "interface": "a-very-long-interface"}}, "private_network.interface", "network interface name"),
    ({"private_network": MESH, "admin_peers": [{**LAPTOP, "public_key": "not-a-key"}]}, "admin_peers[0].public_key", "32 bytes in base64"),
    ({"private_network": MESH, "admin_peers": [{**LAPTOP, "public_key": base64.b64encode(b"x" * 31).decode() + "AA"}]}, "admin_peers[0].public_key", "WireGuard public key"),
    ({"private_network": MESH, "admin_peers": [{**LAPTOP, "name": "Alice Laptop"}]}, "admin_peers[0].name", "single DNS label"),
    ({"private_network": {**MESH, "key_rotation": "next week"}}, "private_network.key_rotation", "short label like 2026-12-01"),
    ({"private_network": {**MESH, "key_rotation": "x" * 65}}, "private_network.key_rotation", "at most 64"),
    ({"management": "private"}, "management", "needs private_network"),
    ({"management": "closed"}, "management", "'public' or 'private'"),
])
def test_mesh_settings_rules(data, setting, rule):
    assert rule in one_problem(GOOD, data, setting)


def test_a_literal_preshared_key_is_refused_without_echoing_it():
    found = one_problem(GOOD, {"private_network": {**MESH, "preshared_key": "c2VjcmV0LXNlbnRpbmVs"}}, "private_network.preshared_key")
    assert "c2VjcmV0LXNlbnRpbmVs" not in found and "${VAR} reference" in found


def test_rules_across_the_inventory_name_host_setting_value_and_rule():
    found = problems({
        "gw1": mesh_host("10.99.0.1", admin_peers=[LAPTOP, {**LAPTOP, "name": "bob", "address": "10.99.0.2"}]),
        "gw2": mesh_host("10.99.0.1", admin_peers=[LAPTOP, {**LAPTOP, "name": "bob", "address": "10.99.0.2"}]),
        "gw3": {**mesh_host("10.99.0.3"), "private_network": {"cidr": "10.98.0.0/24", "address": "10.98.0.3", "port": 51821}},
        "gw4": {**GOOD, "admin_peers": [LAPTOP]},
    })
    assert "host gw2: private_network.address = '10.99.0.1': already used by host gw1; every mesh address must be unique" in found
    assert any(line.startswith("host gw3: private_network.cidr = '10.98.0.0/24': must be the same on every host") for line in found)
    assert any(line.startswith("host gw3: private_network.port = 51821: must be the same") for line in found)
    assert any(line.startswith("host gw3: admin_peers: must be the same on every host") for line in found)
    assert any(line.startswith("host gw4: admin_peers = [1 peers]: needs private_network") for line in found)
    assert any(line.startswith("host gw1: admin_peers[1].public_key = ") and "used by another admin peer" in line for line in found)


def test_admin_peer_outside_the_mesh_or_on_a_host_address_and_a_clash_with_private_cidrs():
    found = problems({
        "gw1": mesh_host("10.99.0.1", admin_peers=[{**LAPTOP, "address": "10.1.0.5"}, {**LAPTOP, "name": "bob", "public_key": KEY_B, "address": "10.99.0.1"}],
                         private_interface="eth1", private_cidrs=["10.99.0.0/16"]),
    })
    assert "host gw1: admin_peers[0].address = '10.1.0.5': must be inside the mesh cidr 10.99.0.0/24" in found
    assert "host gw1: admin_peers[1].address = '10.99.0.1': already used by host gw1; every mesh address must be unique" in found
    assert "host gw1: private_network.cidr = '10.99.0.0/24': overlaps private_cidrs 10.99.0.0/16; the mesh needs a network of its own" in found


def test_preshared_key_is_a_secret_and_the_same_everywhere():
    env = {**ENV, "MESH_PSK": KEY_A, "OTHER_PSK": KEY_B}
    found = problems({"gw1": mesh_host("10.99.0.1", private_network={**MESH, "preshared_key": "${MESH_PSK}"}),
                      "gw2": mesh_host("10.99.0.2", private_network={**MESH, "address": "10.99.0.2", "preshared_key": "${OTHER_PSK}"})}, env)
    assert len(found) == 1 and found[0].startswith("host gw2: private_network.preshared_key = '${OTHER_PSK}=***'")
    assert KEY_A not in found[0] and KEY_B not in found[0]


# --- the wg-quick config -----------------------------------------------------------------------------


def test_config_holds_no_private_key_and_every_peer():
    settings = validate_hosts({"gw1": mesh_host("10.99.0.1", admin_peers=[LAPTOP])}, ENV)["gw1"]
    text = config_text(settings, [dict(name="gw2", public_key=KEY_B, address="10.99.0.2", endpoint="gw2.example.com:51820"),
                                  dict(name="alice-laptop", public_key=KEY_A, address="10.99.0.100", endpoint=None)])
    assert "PrivateKey" not in text and "PresharedKey" not in text
    assert "Address = 10.99.0.1/24\nListenPort = 51820\nPostUp = wg set %i private-key /etc/wireguard/wg0.key\n" in text
    assert f"# gw2\n[Peer]\nPublicKey = {KEY_B}\nAllowedIPs = 10.99.0.2/32\nEndpoint = gw2.example.com:51820\n" in text
    assert f"# alice-laptop\n[Peer]\nPublicKey = {KEY_A}\nAllowedIPs = 10.99.0.100/32" in text
    assert text.rstrip().endswith("AllowedIPs = 10.99.0.100/32")  # a roaming laptop: no endpoint


def test_config_with_a_preshared_key_for_every_peer(tmp_path):
    env = {**ENV, "MESH_PSK": KEY_A}
    settings = validate_hosts({"gw1": mesh_host("10.99.0.1", private_network={**MESH, "preshared_key": "${MESH_PSK}"})}, env)["gw1"]
    text = config_text(settings, [dict(name="gw2", public_key=KEY_B, address="10.99.0.2", endpoint="10.0.0.2:51820")])
    assert f"PresharedKey = {KEY_A}" in text
    if shutil.which("wg-quick"):  # the real parser, when this machine has it
        path = tmp_path / "wg9.conf"
        path.write_text(text)
        assert subprocess.run(["wg-quick", "strip", str(path)], capture_output=True).returncode == 0


def test_facts_parse_their_output():
    assert WireGuardPublicKey().process([KEY_A]) == KEY_A
    assert WireGuardPublicKey().process([]) is None
    assert KEY_A not in WireGuardPublicKey().command("wg0").replace("wg pubkey", "")
    assert "wg pubkey < /etc/wireguard/wg0.key" in WireGuardPublicKey().command("wg0")
    assert KernelWireGuard().process(["yes"]) is True and KernelWireGuard().process(["no"]) is False
    assert AddressNetworks().process([
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever",
        "2: host0    inet 10.231.0.11/24 brd 10.231.0.255 scope global host0\\       valid_lft forever",
        "2: host0    inet6 fe80::1/64 scope link \\       valid_lft forever",
    ]) == [("lo", "127.0.0.0/8"), ("host0", "10.231.0.0/24"), ("host0", "fe80::/64")]
    assert is_public_key(KEY_A) and not is_public_key(KEY_A[:-2]) and not is_public_key("x" * 44)


# --- firewall: the mesh zone and management: private -----------------------------------------------


def test_firewall_opens_the_port_publicly_and_ssh_https_and_private_ports_from_the_mesh(tmp_path):
    settings = validate_hosts({"gw1": mesh_host("10.99.0.1", public_interface="eth0", private_allowed_ports=[9100],
                                                  private_interface="eth1", private_cidrs=["192.168.0.0/24"])}, ENV)["gw1"]
    text = ruleset(settings)
    rules = input_rules(text)
    assert 'iifname "eth0" udp dport 51820 accept' in rules
    assert 'iifname "wg0" ip saddr 10.99.0.0/24 meta l4proto { tcp, udp } th dport { 22, 443, 9100 } accept' in rules
    assert 'iifname "eth0" tcp dport 22 ip saddr { 203.0.113.0/24 } accept' in rules
    run = nft_check(text, tmp_path)
    assert run is None or run.returncode == 0, run.stderr


def test_management_private_leaves_no_ssh_on_the_public_side(tmp_path):
    settings = validate_hosts({"gw1": mesh_host("10.99.0.1", management="private", egress="restricted")}, ENV)["gw1"]
    text = ruleset(settings)
    ssh_rules = [rule for rule in input_rules(text) if "22" in rule.replace("51820", "")]
    assert ssh_rules == ['iifname "wg0" ip saddr 10.99.0.0/24 meta l4proto { tcp, udp } th dport { 22, 443 } accept']
    assert 'udp dport 51820 accept comment "WireGuard mesh"' in text and 'oifname "wg0" accept' in text
    run = nft_check(text, tmp_path)
    assert run is None or run.returncode == 0, run.stderr


def recorded(ssh_connection: str):
    """What the lockout guard gets from a host whose $SSH_CONNECTION is this."""
    return SshConnection().process([ssh_connection])


def test_lockout_guard_needs_a_deploy_over_the_mesh_for_management_private():
    private = validate_hosts({"gw1": mesh_host("10.99.0.1", management="private")}, ENV)["gw1"]
    refused = lockout_problem(private, recorded("203.0.113.7 50022 198.51.100.1 22"))
    assert refused.startswith("management: private closes SSH on the public side, but this deploy connects from "
                              "203.0.113.7 to 198.51.100.1, not over the mesh (from inside 10.99.0.0/24 to this host's "
                              "mesh address 10.99.0.1)")
    # From a laptop on the mesh (or a mesh host as jump host) to this host's mesh address.
    assert lockout_problem(private, recorded("10.99.0.100 50022 10.99.0.1 22")) is None
    assert "sshd_port" in lockout_problem(private, recorded("10.99.0.100 50022 10.99.0.1 2222"))
    public = validate_hosts({"gw1": mesh_host("10.99.0.1")}, ENV)["gw1"]
    # Over the mesh, even from outside admin_cidrs: the mesh zone admits SSH.
    assert lockout_problem(public, recorded("10.99.0.7 50022 10.99.0.1 22")) is None
    assert lockout_problem(public, recorded("198.51.100.1 50022 10.99.0.1 22")) is not None


def test_a_mesh_range_client_that_arrives_on_the_public_address_is_not_over_the_mesh():
    # A client address inside the mesh cidr is not enough: the connection reaches the host's public
    # address, so it comes in on the public side, which management: private closes.
    private = validate_hosts({"gw1": mesh_host("10.99.0.1", management="private")}, ENV)["gw1"]
    for connection in ("10.99.0.100 50022 198.51.100.1 22", "10.99.0.100 50022 10.99.0.2 22",
                       "10.99.0.100 50022 ::ffff:198.51.100.1 22"):
        assert lockout_problem(private, recorded(connection)).startswith("management: private closes SSH"), connection
    assert lockout_problem(private, recorded("::ffff:10.99.0.100 50022 ::ffff:10.99.0.1 22")) is None
    assert "not IP addresses" in lockout_problem(private, recorded("10.99.0.100 50022 gw1 22"))


def test_nginx_serves_operators_on_the_mesh():
    from roles.nginx import operator_cidrs

    assert "10.99.0.0/24" in operator_cidrs(validate_hosts({"gw1": mesh_host("10.99.0.1")}, ENV)["gw1"])


def test_without_the_mesh_the_ruleset_keeps_its_public_ssh_and_layout():
    # Byte for byte as before the mesh: a changed file would make every deployed host reload its firewall.
    text = ruleset(validate_hosts({"gw1": GOOD}, ENV)["gw1"])
    assert "udp dport 546 accept\n\n\t\t# SSH from the admin networks and ssh_cidrs only.\n" in text
    assert "tcp dport 22 ip saddr { 203.0.113.0/24 } accept\n\t\t# HTTP" in text
    assert "tcp dport { 80, 443 } accept\n\n\t\t# Everything else" in text
    assert "51820" not in text and "management" not in text and "mesh" not in text


def test_key_rotation_is_a_label_per_host():
    found = validate_hosts({"gw1": mesh_host("10.99.0.1", private_network={**MESH, "key_rotation": "2026-12-01"}),
                            "gw2": mesh_host("10.99.0.2")}, ENV)
    assert found["gw1"].private_network.key_rotation == "2026-12-01" and found["gw2"].private_network.key_rotation is None


def test_rotation_and_leaving_facts_parse_their_output():
    assert KeyRotation().process(["2026-12-01"]) == "2026-12-01"
    assert KeyRotation().process([]) is None
    assert KitMeshInterfaces().process(["/etc/wireguard/wg0.conf", "/etc/wireguard/mesh1.conf"]) == ["wg0", "mesh1"]
    assert KitMeshInterfaces().process([]) == [] and KitMeshInterfaces().default() == []
