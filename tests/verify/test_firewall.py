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


def _values(match: dict) -> list:
    right = match["right"]
    return right["set"] if isinstance(right, dict) and "set" in right else [right]


def _covers(value, port: int) -> bool:
    """Does a dport value (a port, a range, a named set nobody can see into here) include port?"""
    if isinstance(value, int):
        return value == port
    if isinstance(value, dict) and "range" in value:
        low, high = value["range"]
        return low <= port <= high
    return True  # a named set, a service name: it may


def may_admit_new_tcp(rule: list[dict], port: int) -> bool:
    """Could this rule's verdict apply to a new TCP connection to port from a non-loopback address?

    Only the matches that certainly exclude such a packet count; anything else is taken to match,
    so a rule without a port, with a range or with a match this does not know counts as admitting.
    """
    for expr in rule:
        match = expr.get("match")
        if not match:
            continue
        left, op, values = match["left"], match["op"], _values(match)
        meta, ct, payload = left.get("meta", {}).get("key"), left.get("ct", {}).get("key"), left.get("payload", {})
        if op in ("==", "in"):
            if ct == "state" and "new" not in values:
                return False
            if meta in ("iif", "iifname") and values == ["lo"]:
                return False
            if meta == "l4proto" and "tcp" not in values:
                return False
            if payload.get("field") == "dport" and payload.get("protocol") in ("tcp", "th") and not any(_covers(v, port) for v in values):
                return False
        elif op == "!=" and payload.get("field") == "dport" and any(_covers(v, port) for v in values if isinstance(v, int)):
            return False
        if payload.get("protocol") in ("udp", "udplite", "sctp", "dccp", "icmp", "icmpv6"):
            return False  # a field of another protocol's header: not a TCP packet
    return True


def source_networks(rule: list[dict]) -> list | None:
    """The networks an `ip saddr` / `ip6 saddr` match of the rule admits; None when it has none it can name."""
    found = []
    for expr in rule:
        match = expr.get("match")
        if not match or match["op"] not in ("==", "in") or match["left"].get("payload", {}).get("field") != "saddr":
            continue
        for value in _values(match):
            if isinstance(value, dict) and "prefix" in value:
                found.append(ipaddress.ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}"))
            elif isinstance(value, dict) and "range" in value:
                low, high = (ipaddress.ip_address(v) for v in value["range"])
                found.extend(ipaddress.summarize_address_range(low, high))
            elif isinstance(value, str) and not value.startswith("@"):
                found.append(ipaddress.ip_network(value))
            else:
                return None  # a named set: its members could be anyone
    return found or None


def ssh_admission_problems(chain_definition: dict, rules: list[list[dict]], port: int, allowed: list) -> list[str]:
    """Why the live input chain could admit a new SSH connection from outside `allowed`; empty when it cannot."""
    if chain_definition.get("policy") != "drop":
        return [f"the input policy is {chain_definition.get('policy')}: everything not dropped is admitted"]
    problems = []
    for rule in rules:
        action = next((key for expr in rule for key in ("accept", "jump", "goto") if key in expr), None)
        if action is None or not may_admit_new_tcp(rule, port):
            continue
        if action != "accept":
            problems.append(f"a rule that may take SSH on port {port} to another chain: {rule}")
            continue
        sources = source_networks(rule)
        if sources is None:
            problems.append(f"a rule that may admit SSH on port {port} from any address: {rule}")
        elif not all(any(net.version == a.version and net.subnet_of(a) for a in allowed) for net in sources):
            problems.append(f"a rule that may admit SSH on port {port} from {[str(n) for n in sources]}: {rule}")
    return problems


def test_ssh_only_from_admin_cidrs_and_ssh_cidrs(target):
    """What the live input chain admits for a new connection to sshd_port, not only the rules naming that port."""
    settings = target.settings
    allowed = [ipaddress.ip_network(cidr) for cidr in [*settings.admin_cidrs, *settings.ssh_cidrs]]
    if settings.sshd_port in settings.private_allowed_ports:
        allowed += [ipaddress.ip_network(c) for c in settings.private_cidrs]
    definition, rules = chain(target, "input")
    assert ssh_admission_problems(definition, rules, settings.sshd_port, allowed) == []
    ssh = [rule for rule in rules if settings.sshd_port in matched(rule, "dport") and verdict(rule) == "accept"]
    assert ssh, "no rule admits SSH at all"
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
