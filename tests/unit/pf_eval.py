"""A small pf evaluator for the kit's rendered anchor: each line parsed by the part of pf.conf(5)'s
grammar the kit uses (an unknown word fails the parse), then packets run through the rules as pf
runs them: a packet of a known state passes; otherwise the first matching `quick` rule decides, or
else the last matching rule, and without a match pf passes it. What it models of pf, from pf.conf(5) (OpenBSD 4.1 on, which Apple's
pf derives from):

- pass rules keep state; a TCP pass rule without `flags` has `flags S/SA` (it matches only a
  packet with SYN set and ACK clear, a connection's first), `flags any` matches every packet;
- a state passes the connection's packets both ways.

It does not model TCP sequence-number tracking: pf does pick up a connection mid-stream from a
`flags any` state (pf.c's loose window check "when PF catches an already established stream").
No pf parser runs on this machine (pfctl is BSD's and macOS', and py-pf drives /dev/pf by ioctl):
this is the stand-in for `pfctl -n`, and it is not pfctl.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

TOKEN = re.compile(r"\{ [^}]* \}|\S+")


@dataclass
class Rule:
    text: str
    action: str
    direction: str
    quick: bool = False
    interface: tuple[str, bool] | None = None  # (name, negated)
    family: str | None = None  # inet, inet6
    protocols: list[str] | None = None
    source: list[str] = field(default_factory=lambda: ["any"])
    source_ports: list[str] | None = None
    destination: list[str] = field(default_factory=lambda: ["any"])
    destination_ports: list[str] | None = None
    icmp_types: list[str] | None = None
    flags: str | None = None  # as written; None for the default

    @property
    def tcp_flags(self) -> str | None:
        """The flags pf checks (`S/SA` by default on a pass rule, which keeps state), or None for any."""
        flags = self.flags or ("S/SA" if self.action == "pass" else "any")
        return None if flags == "any" else flags


@dataclass(frozen=True)
class Packet:
    direction: str
    interface: str
    protocol: str
    source: str
    source_port: int
    destination: str
    destination_port: int
    flags: str = ""  # TCP flags set: S, A, P, F, R

    def connection(self) -> tuple:
        return self.protocol, frozenset({(self.source, self.source_port), (self.destination, self.destination_port)})


def parse(text: str) -> list[Rule]:
    """The rules of a rendered anchor, in order; comments and the table definition are skipped."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("table <"):
            continue
        rules.append(parse_rule(line))
    return rules


def parse_rule(line: str) -> Rule:
    words = [word[2:-2].split(", ") if word.startswith("{") else word for word in TOKEN.findall(line)]

    def take(*options):
        if words and isinstance(words[0], str) and words[0] in options:
            return words.pop(0)
        return None

    def value():
        if not words:
            raise ValueError(f"{line!r}: a value is missing")
        found = words.pop(0)
        return found if isinstance(found, list) else [found]

    action = take("pass", "block")
    if action is None:
        raise ValueError(f"{line!r}: not a pass or block rule")
    if action == "block":
        take("drop")
    direction = take("in", "out")
    if direction is None:
        raise ValueError(f"{line!r}: no direction")
    rule = Rule(line, action, direction)
    take("log")
    rule.quick = take("quick") is not None
    if take("on"):
        negated = take("!") is not None
        rule.interface = (value()[0], negated)
    rule.family = take("inet", "inet6")
    if take("proto"):
        rule.protocols = value()
    if not take("all"):
        if take("from"):
            rule.source = value()
            if take("port"):
                rule.source_ports = value()
        if take("to"):
            rule.destination = value()
            if take("port"):
                rule.destination_ports = value()
    if take("icmp-type", "icmp6-type"):
        rule.icmp_types = value()
    if take("flags"):
        rule.flags = value()[0]
    if take("keep") and take("state") is None:
        raise ValueError(f"{line!r}: `keep` without `state`")
    if words:
        raise ValueError(f"{line!r}: not understood from {words[0]!r} on")
    return rule


def matches(rule: Rule, packet: Packet, tables: dict[str, set[str]]) -> bool:
    if rule.direction != packet.direction:
        return False
    if rule.interface and (packet.interface == rule.interface[0]) == rule.interface[1]:
        return False
    version = ipaddress.ip_address(packet.source).version
    if rule.family and {"inet": 4, "inet6": 6}[rule.family] != version:
        return False
    if rule.protocols and packet.protocol not in rule.protocols:
        return False
    if rule.icmp_types and packet.protocol not in ("icmp", "icmp6"):
        return False
    if not address_in(packet.source, rule.source, tables) or not address_in(packet.destination, rule.destination, tables):
        return False
    if rule.source_ports and str(packet.source_port) not in rule.source_ports:
        return False
    if rule.destination_ports and str(packet.destination_port) not in rule.destination_ports:
        return False
    if packet.protocol == "tcp" and rule.tcp_flags:
        wanted, mask = rule.tcp_flags.split("/")
        if {flag for flag in packet.flags if flag in mask} != set(wanted):
            return False
    return True


def address_in(address: str, spec: list[str], tables: dict[str, set[str]]) -> bool:
    found = ipaddress.ip_address(address)
    for item in spec:
        if item == "any":
            return True
        if item.startswith("<"):
            if address in tables.get(item.strip("<>"), set()):
                return True
            continue
        net = ipaddress.ip_network(item)
        if net.version == found.version and found in net:
            return True
    return False


class Pf:
    """pf with one anchor loaded and enabled; `states` starts empty, as when pf was off."""

    def __init__(self, text: str, tables: dict[str, set[str]] | None = None):
        self.rules = parse(text)
        self.tables = tables or {}
        self.states: set[tuple] = set()

    def decide(self, packet: Packet) -> tuple[str, str | None]:
        """("pass" | "block", the deciding rule's text, or None for a state or no match)."""
        if packet.connection() in self.states:
            return "pass", None
        decided = None
        for rule in self.rules:
            if matches(rule, packet, self.tables):
                decided = rule
                if rule.quick:
                    break
        if decided is None:
            return "pass", None
        if decided.action == "pass":
            self.states.add(packet.connection())
        return decided.action, decided.text
