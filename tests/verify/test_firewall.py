"""Role firewall: the kit's nftables table is live, as rendered, persisted for boot, and admits
SSH from the admin networks and ssh_cidrs only."""

import ipaddress
import json

from roles.firewall.nftables import FINGERPRINT, MARKER, NFT_CONF, NFT_DIR, PERSISTED, ROLLBACK_UNIT, TABLE, ruleset


def nft_json(target, what: str) -> list[dict]:
    return json.loads(target.host.check_output(f"nft -j list {what}"))["nftables"]


def chain(target, name: str) -> tuple[dict, list[list[dict]]]:
    """The chain's definition and the expressions of each of its rules."""
    items = nft_json(target, f"chain inet {TABLE} {name}")
    definition = next(item["chain"] for item in items if "chain" in item)
    return definition, [item["rule"]["expr"] for item in items if "rule" in item]


def matched(rule: list[dict], field: str) -> list:
    """Right-hand values of the rule's == matches on payload `field` (dport, saddr) or meta `field`."""
    values = []
    for expr in rule:
        match = expr.get("match")
        if not match or match["op"] not in ("==", "in"):
            continue
        left = match["left"]
        if left.get("payload", {}).get("field") == field or left.get("meta", {}).get("key") == field:
            right = match["right"]
            values.extend(right["set"] if isinstance(right, dict) and "set" in right else [right])
    return values


def networks(values: list) -> list:
    found = []
    for value in values:
        if isinstance(value, dict) and "prefix" in value:
            found.append(ipaddress.ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}"))
        else:
            found.append(ipaddress.ip_network(value))
    return found


def verdict(rule: list[dict]) -> str | None:
    return next((key for expr in rule for key in ("accept", "drop") if key in expr), None)


def test_nftables_installed_and_enabled_at_boot(target):
    assert target.host.package("nftables").is_installed
    assert target.host.service("nftables").is_enabled


def test_boot_config_loads_the_kit_file_and_flushes_nothing(target):
    conf = target.host.file(NFT_CONF).content_string
    assert f'include "{NFT_DIR}/*.nft"' in conf
    assert "flush ruleset" not in [line.strip() for line in conf.splitlines() if not line.strip().startswith("#")]
    assert target.host.file(PERSISTED).content_string == ruleset(target.settings)
    assert target.host.run(f"nft -c -f {NFT_CONF}").rc == 0


def test_the_live_table_is_the_confirmed_one(target):
    # No hand edits since the last confirmation, and no rollback waiting to fire.
    live = target.host.check_output(FINGERPRINT)
    recorded = target.host.file(MARKER).content_string.split()
    assert recorded[1] == live, "the live kit table differs from what the last deploy confirmed"
    assert target.host.run(f"systemctl is-active --quiet {ROLLBACK_UNIT}.timer").rc != 0, "a rollback is still armed"


def test_input_policy_is_drop(target):
    definition, _ = chain(target, "input")
    assert definition["hook"] == "input" and definition["policy"] == "drop"
    forward, _ = chain(target, "forward")
    assert forward["policy"] == "drop"


def test_gateway_port_dropped_first_and_never_accepted(target):
    port = target.settings.gateway_port
    _, rules = chain(target, "input")
    first = rules[0]
    assert port in matched(first, "dport") and verdict(first) == "drop"
    assert {"match": {"op": "!=", "left": {"meta": {"key": "iif"}}, "right": "lo"}} in first
    assert not any(port in matched(rule, "dport") for rule in rules if verdict(rule) == "accept")


def test_ssh_only_from_admin_cidrs_and_ssh_cidrs(target):
    settings = target.settings
    admin = [ipaddress.ip_network(cidr) for cidr in [*settings.admin_cidrs, *settings.ssh_cidrs]]
    allowed = admin + ([ipaddress.ip_network(c) for c in settings.private_cidrs] if settings.sshd_port in settings.private_allowed_ports else [])
    _, rules = chain(target, "input")
    ssh = [rule for rule in rules if settings.sshd_port in matched(rule, "dport") and verdict(rule) == "accept"]
    assert ssh, "no rule admits SSH at all"
    for rule in ssh:
        sources = networks(matched(rule, "saddr"))
        assert sources, f"an SSH rule without a source restriction: {rule}"
        # The kit merges overlapping and adjacent networks (roles/firewall.py, collapsed).
        merged = list(ipaddress.collapse_addresses(a for a in allowed if a.version == 4)) + list(ipaddress.collapse_addresses(a for a in allowed if a.version == 6))
        assert all(any(net.version == a.version and net.subnet_of(a) for a in merged) for net in sources), sources
    if settings.public_interface:
        assert any(matched(rule, "iifname") == [settings.public_interface] for rule in ssh)


def test_ban_sets_exist_with_timeouts(target):
    for name, kind in (("banned_v4", "ipv4_addr"), ("banned_v6", "ipv6_addr")):
        found = next(item["set"] for item in nft_json(target, f"set inet {TABLE} {name}") if "set" in item)
        assert found["type"] == kind and "timeout" in found["flags"]


def test_egress_as_settings_say(target):
    has_output = target.host.run(f"nft list chain inet {TABLE} output").rc == 0
    if target.settings.egress == "open":
        assert not has_output
    else:
        definition, _ = chain(target, "output")
        assert definition["policy"] == "drop"
