"""verify's SSH check reads what the live input chain admits: tried on rulesets loaded into a real
nft in a scratch network namespace, the kit's own and ones with a hole in them."""

import ipaddress
import json
import os
import shutil
import subprocess

import pytest

from openclaw_kit.settings import validate_hosts
from roles.firewall.nftables import TABLE, ruleset
from tests.unit.fake_host import ENV
from tests.verify.test_firewall import ssh_admission_problems

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"),
                                reason="needs root, nft and unshare to load rulesets in a scratch namespace")

BASE = {"domain": "gw.example.com", "admin_email": "a@example.com", "admin_cidrs": ["203.0.113.0/24"],
        "gateway_token": "${OPENCLAW_GATEWAY_TOKEN}"}
ALLOWED = [ipaddress.ip_network("203.0.113.0/24")]


def live_input_chain(text: str, tmp_path, extra_rule: str | None = None) -> tuple[dict, list]:
    (tmp_path / "ruleset.nft").write_text(text)
    add = f" && nft add rule inet {TABLE} input {extra_rule}" if extra_rule else ""
    run = subprocess.run(["unshare", "-n", "sh", "-c", f"nft -f {tmp_path / 'ruleset.nft'}{add} && nft -j list chain inet {TABLE} input"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    items = json.loads(run.stdout)["nftables"]
    return next(i["chain"] for i in items if "chain" in i), [i["rule"]["expr"] for i in items if "rule" in i]


def kit_ruleset(**data) -> str:
    return ruleset(validate_hosts({"gw1": {**BASE, **data}}, ENV)["gw1"])


@pytest.mark.parametrize("data", [{}, {"public_interface": "eth0", "ssh_cidrs": ["2001:db8::/48"]},
                                  {"private_interface": "wg0", "private_cidrs": ["10.8.0.0/24"], "private_allowed_ports": [9100]}],
                         ids=["minimal", "public interface and IPv6", "private network without SSH"])
def test_the_kits_rulesets_admit_ssh_only_from_the_allowed_networks(data, tmp_path):
    allowed = ALLOWED + [ipaddress.ip_network(c) for c in data.get("ssh_cidrs", [])]
    definition, rules = live_input_chain(kit_ruleset(**data), tmp_path)
    assert ssh_admission_problems(definition, rules, 22, allowed) == []
    # And the check can fail: the same ruleset seen as if SSH were allowed from one network only.
    if data.get("ssh_cidrs"):
        assert ssh_admission_problems(definition, rules, 22, ALLOWED)


@pytest.mark.parametrize("hole", [
    "accept",                                       # no port, no source
    "tcp dport 20-30 accept",                       # a range holding 22
    "ip saddr 198.51.100.0/24 accept",              # a source outside, any port
    "meta l4proto tcp ip saddr 0.0.0.0/0 accept",
    "tcp dport { 22, 2222 } ip saddr 198.51.100.7 accept",
    "tcp dport != 80 accept",
    "ct state new accept",
])
def test_a_hole_fails_the_check(hole, tmp_path):
    definition, rules = live_input_chain(kit_ruleset(), tmp_path, extra_rule=hole)
    problems = ssh_admission_problems(definition, rules, 22, ALLOWED)
    assert len(problems) == 1 and "may admit SSH" in problems[0], problems


@pytest.mark.parametrize("harmless", ["udp dport 22 accept", "tcp dport 2000-2100 accept", "iif lo accept",
                                      "ct state established accept", "tcp dport 22 ip saddr 203.0.113.9 accept"])
def test_rules_that_cannot_admit_new_ssh_from_outside_pass(harmless, tmp_path):
    definition, rules = live_input_chain(kit_ruleset(), tmp_path, extra_rule=harmless)
    assert ssh_admission_problems(definition, rules, 22, ALLOWED) == []


def test_an_accepting_policy_fails_the_check(tmp_path):
    definition, rules = live_input_chain(kit_ruleset().replace("policy drop;", "policy accept;", 1), tmp_path)
    assert ssh_admission_problems(definition, rules, 22, ALLOWED) == ["the input policy is accept: everything not dropped is admitted"]
