"""The macOS path on recorded facts of a macOS 15 Apple-silicon host (tests/unit/fixtures/macos15_arm64/):
the platform rows and settings errors, the pf ruleset against the nftables one, the plists, the pf apply
script, and a --dry deploy (the firewall role's exact commands: test_macos_pf.py). Never run on a Mac."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from openclaw_kit import launchd
from openclaw_kit.platform import PLATFORMS, System, platform_of_system, system_problem
from openclaw_kit.settings import SettingsError, validate_hosts
from openclaw_kit.templates import render
from roles.firewall import nftables, pf
from tests.unit.fake_host import ENV
from tests.unit.macos_host import FRESH, recorded
from tests.unit.test_firewall import COMBINATIONS

GOOD = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}
MAC = System("Darwin", "macOS", 15, arch="arm64")
REPO = Path(__file__).resolve().parents[2]


def settings(**data):
    # Without the Mac's System: the firewall's tests also render settings a Mac refuses (sshd_port 2222),
    # since the rules do not depend on the system.
    return validate_hosts({"mini": {**GOOD, **data}}, ENV)["mini"]


def problems(data: dict, system: System = MAC) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        validate_hosts({"mini": {**GOOD, **data}}, ENV, {"mini": system})
    return caught.value.problems


# --- platform ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("major", [14, 15, 26])
@pytest.mark.parametrize("arch", ["arm64", "x86_64"])
def test_macos_14_and_newer_on_both_cpus_have_a_row(major, arch):
    system = System("Darwin", "macOS", major, arch=arch)
    assert system_problem(system) is None
    row = platform_of_system(system)
    assert (row.family, row.service_manager, row.firewall, row.root_group) == ("macos", "launchd", "pf", "wheel")
    assert row.label.startswith(f"macOS {major} ")


def test_the_linux_rows_are_unchanged():
    assert {key: row.firewall for key, row in PLATFORMS.items() if key[0] != "macOS"} == {
        ("Debian", 12, None): "nftables", ("Debian", 13, None): "nftables", ("Ubuntu", 24, 4): "nftables"}


@pytest.mark.parametrize(("system", "expected"), [
    (System("Darwin", "macOS", 13, arch="arm64"), "macOS 13 is not supported: the kit supports macOS 14 Sonoma, "),
    (System("Darwin", "macOS", None, arch="arm64"), "macOS of unknown version (sw_vers gave no answer) is not supported"),
    (System("Darwin", "macOS", 15, arch="i386"), "macOS 15 Sequoia on CPU 'i386' is not supported: the kit supports arm64 and x86_64"),
])
def test_an_older_or_unknown_mac_is_a_settings_problem_naming_the_host(system, expected):
    found = problems({}, system)
    assert len(found) == 1 and found[0].startswith("host mini: operating system = 'macOS': ") and expected in found[0]


def test_the_version_is_read_from_sw_vers():
    from openclaw_kit.platform_macos import macos_major
    assert [macos_major(v) for v in ("15.1.1", "14.7", "26.0", "", None, "ProductVersion")] == [15, 14, 26, None, None, None]
    assert macos_major(recorded("sw_vers-productVersion.txt")) == 15


@pytest.mark.parametrize(("data", "setting"), [
    ({"ipv6_accept_ra": True}, "ipv6_accept_ra"),
    ({"unattended_reboot": True}, "unattended_reboot"),
    ({"fail2ban_maxretry": 3}, "fail2ban_maxretry"),
    ({"public_webhooks": ["hooks"]}, "public_webhooks"),
    ({"offsite_backup": {"repository": "sftp:b@backup.example.com:/srv/x", "password": "${RESTIC_PASSWORD}",
                         "sftp_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}},
     "offsite_backup"),
    ({"monitoring": {"enabled": True, "webhook": {"url": "https://hooks.example.com/x", "bearer_token": "${RESTIC_PASSWORD}"}}},
     "monitoring"),
])
def test_a_linux_only_setting_on_a_mac_is_refused(data, setting):
    env = {**ENV, "RESTIC_PASSWORD": "p" * 40}
    with pytest.raises(SettingsError) as caught:
        validate_hosts({"mini": {**GOOD, **data}}, env, {"mini": MAC})
    found = caught.value.problems
    assert len(found) == 1 and found[0].startswith(f"host mini: {setting} = "), found
    assert "remove it for this macOS 15 Sequoia host" in found[0]
    assert "p" * 40 not in found[0]
    # The same settings are fine on Linux.
    validate_hosts({"mini": {**GOOD, **data}}, env, {"mini": System("Linux", "Debian", 12)})


def test_npm_node_packages_are_refused_for_a_mac():
    found = problems({"node_source": "npm-package"})
    assert len(found) == 1 and found[0].startswith("host mini: node_source = 'npm-package': ") and "stale" in found[0]


# --- pf: the same policy as nftables, from the same data --------------------------------------------------------


def nft_allows(text: str) -> set[tuple]:
    """(interface match, family, protocols, sources, ports) of every accept rule for a port in the input chain."""
    chain = text.split("chain input {", 1)[1].split("\n\t}", 1)[0]
    allowed = set()
    for line in (line.strip() for line in chain.splitlines()):
        if not line.endswith("accept") or "dport" not in line:
            continue
        iface = re.match(r'iifname (!= )?"(\w+)" ', line)
        family = "6" if " ip6 saddr" in line else "4" if " ip saddr" in line or line.startswith("ip saddr") else "any"
        sources = re.search(r"saddr \{ ([^}]*) \}", line)
        protos = re.search(r"l4proto \{ ([^}]*) \}", line)
        ports = re.search(r"dport (\{ ([^}]*) \}|(\d+))", line)
        if "ip6 saddr fe80::/10 udp sport 547" in line:
            allowed.add(("", "6", ("udp",), ("fe80::/10",), ("546",)))
            continue
        allowed.add((
            ("! " if iface and iface.group(1) else "") + (iface.group(2) if iface else ""),
            family,
            tuple(sorted(protos.group(1).split(", "))) if protos else ("tcp",) if "tcp dport" in line else ("udp",),
            tuple(sources.group(1).split(", ")) if sources else ("any",),
            tuple((ports.group(2) or ports.group(3)).split(", ")),
        ))
    return allowed


# pf only: macOS' DHCP client receives on a UDP socket that pf filters (Linux's use raw sockets).
PF_DHCPV4 = "pass in quick inet proto udp from any port 67 to any port 68"


def pf_allows(text: str) -> set[tuple]:
    allowed = set()
    for line in text.splitlines():
        if not line.startswith("pass in quick") or " port " not in line or line == PF_DHCPV4:
            continue
        iface = re.search(r"quick on (! )?(\w+) ", line)
        family = "6" if " inet6 " in line else "4" if " inet " in line else "any"
        protos = re.search(r"proto (\{ ([^}]*) \}|(\w+))", line)
        sources = re.search(r"from (\{ ([^}]*) \}|(\S+))", line)
        ports = re.search(r"to any port (\{ ([^}]*) \}|(\d+))", line)
        allowed.add((
            ("! " if iface and iface.group(1) else "") + (iface.group(2) if iface else ""),
            family,
            tuple(sorted((protos.group(2) or protos.group(3)).split(", "))),
            tuple((sources.group(2) or sources.group(3)).split(", ")),
            tuple((ports.group(2) or ports.group(3)).split(", ")),
        ))
    return allowed


@pytest.mark.parametrize("data", COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_pf_and_nftables_allow_the_same_things(data):
    s = settings(**data)
    nft, pf_rules = nftables.ruleset(s), pf.ruleset(s)
    assert pf_allows(pf_rules) == nft_allows(nft)
    assert PF_DHCPV4 in pf_rules.splitlines()
    assert nft_allows(nft), "the comparison must compare something"
    # The gateway: dropped from anywhere but loopback, first.
    first = [line for line in pf_rules.splitlines() if line and not line.startswith(("#", "table"))][0]
    assert first == f"block drop in quick on ! lo0 proto {{ tcp, udp }} from any to any port {s.gateway_port}"
    assert "block drop in log quick all" in pf_rules
    # Egress: restricted on both or open on both, with the same extra ports.
    if s.egress == "restricted":
        out = pf_rules.split("# egress: restricted", 1)[1]
        for port in ("53", "123", "{ 80, 443 }", "{ 67, 547 }", *(str(p) for p in s.egress_allowed_ports)):
            assert port in out
        assert out.rstrip().endswith("block drop out log quick all")
    else:
        assert pf_rules.rstrip().endswith("pass out quick all") and "hook output" not in nft


def test_the_comparison_catches_a_difference():
    s = settings()
    assert pf_allows(pf.ruleset(settings(sshd_port=2222))) != nft_allows(nftables.ruleset(s))


# The firewall role's exact commands on a fresh, a converged and a drifted Mac: tests/unit/test_macos_pf.py.


# --- plists -----------------------------------------------------------------------------------------------------


def rollback_plist() -> bytes:
    """The one-shot the apply script writes, as it writes it (its shell variables filled in)."""
    script = render("firewall", "macos/openclaw-kit-firewall-apply.j2", **pf.script_data())
    body = script.split("<<PLIST\n", 1)[1].split("\nPLIST\n", 1)[0]
    return body.replace("$LABEL", pf.ROLLBACK_LABEL).replace("$SELF", pf.APPLY).replace("$1", "45").encode()


@pytest.mark.parametrize("plist", [
    pytest.param(lambda: launchd.plist_text(pf.boot_plist()).encode(), id="pf at boot"),
    pytest.param(rollback_plist, id="firewall rollback one-shot"),
])
def test_every_plist_parses_and_uses_only_launchd_keys(plist):
    parsed = plistlib.loads(plist())
    assert set(parsed) <= launchd.KEYS and parsed["Label"].startswith("org.openclaw-kit.")
    assert parsed["ProgramArguments"][0].startswith("/")


def test_a_plist_with_a_key_launchd_does_not_know_is_refused():
    with pytest.raises(ValueError, match=r"keys not in launchd.plist\(5\): \['RunAtBoot'\]"):
        launchd.plist_text({"Label": "x", "RunAtBoot": True})


def test_the_launchd_job_fact_reads_launchctl_print():
    job = launchd.LaunchdJob().process(recorded("launchctl-print-system-org.openclaw-kit.firewall.txt").splitlines())
    assert job == {"state": "not running", "pid": None, "path": f"{launchd.DAEMONS}/{pf.BOOT_LABEL}.plist"}
    assert launchd.LaunchdJob().process([]) is None
    # Published (OS X 10.10, space-indented): nested blocks' own `path`/`state` lines are not the job's.
    assert launchd.LaunchdJob().process(recorded("launchctl-print-published-osx10.10.txt").splitlines()) == {
        "state": "running", "pid": 24784, "path": "/Library/LaunchDaemons/dev.mysql.plist"}
    assert launchd.LaunchdJob().process(['Bad request.', 'Could not find service "x" in domain for system']) is None


# --- the apply script, run here with stand-ins for pfctl, launchctl and plutil ------------------------------------

STAND_INS = {
    # pfctl: the anchor's rules live in $PF/anchor; -n checks for the word "broken"; -sr lists them.
    "pfctl": r"""#!/bin/sh
echo "pfctl $*" >> "$CALLS"
case "$*" in
  "-n "*) ! grep -q broken "$5" ;;
  "-a openclaw-kit -f "*) cp "$4" "$PF/anchor" ;;
  "-a openclaw-kit -sr") cat "$PF/anchor" 2>/dev/null ;;
  "-a openclaw-kit -F rules") : > "$PF/anchor" ;;
  "-s info") [ -f "$PF/enabled" ] && echo "Status: Enabled for 0 days 00:01:00           Debug: Urgent" || echo "Status: Disabled" ;;
  "-E") touch "$PF/enabled" ;;
  *) : ;;
esac
""",
    "launchctl": '#!/bin/sh\necho "launchctl $*" >> "$CALLS"\n',
    "plutil": '#!/bin/sh\necho "plutil $*" >> "$CALLS"\npython3 -c "import plistlib,sys; plistlib.load(open(sys.argv[1],\'rb\'))" "$3"\n',
    "logger": "#!/bin/sh\n:\n",
}


@pytest.fixture
def mac_script(tmp_path):
    if not shutil.which("shasum"):
        pytest.skip("needs shasum (perl) to run the macOS apply script")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STAND_INS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "pf").mkdir()
    data = {**pf.script_data(), "path": str(tmp_path / "apply"), "run_dir": str(tmp_path / "run"),
            "persisted": str(tmp_path / "persisted.pf"), "marker": str(tmp_path / "applied")}
    script = tmp_path / "apply"
    script.write_text(render("firewall", "macos/openclaw-kit-firewall-apply.j2", **data))
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"), "PF": str(tmp_path / "pf")}

    def run(*args):
        return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=60)
    return run, tmp_path


def test_the_mac_apply_script_loads_confirms_and_rolls_back(mac_script):
    run, tmp = mac_script
    first, second = tmp / "first.pf", tmp / "second.pf"
    first.write_text(pf.ruleset(settings()))
    second.write_text(pf.ruleset(settings(sshd_port=2222)))
    assert run("--timeout", "30", str(first)).returncode == 0
    assert (tmp / "pf" / "enabled").exists(), "pf enabled by the load"
    plist = tmp / "run" / f"{pf.ROLLBACK_LABEL}.plist"
    assert plistlib.loads(plist.read_bytes())["ProgramArguments"][-1] == f"sleep 30; exec {tmp / 'apply'} --rollback"
    assert run("--confirm").returncode == 0
    assert (tmp / "persisted.pf").read_text() == first.read_text() and not plist.exists()
    sha = hashlib.sha256(first.read_bytes()).hexdigest()
    assert (tmp / "applied").read_text().split()[0] == sha
    assert run("--timeout", "30", str(second)).returncode == 0
    assert (tmp / "pf" / "anchor").read_text() == second.read_text()
    assert run("--rollback").returncode == 0
    assert (tmp / "pf" / "anchor").read_text() == first.read_text(), "the last confirmed rules are back"
    late = run("--confirm")
    assert late.returncode == 3 and "nothing to confirm" in late.stderr
    calls = (tmp / "calls").read_text().splitlines()
    assert [c for c in calls if c.startswith("launchctl bootstrap")] == [f"launchctl bootstrap system {plist}"] * 2
    # Armed before the load, each time.
    assert calls.index(f"launchctl bootstrap system {plist}") < calls.index(f"pfctl -a openclaw-kit -f {tmp / 'run' / 'loaded.pf'}")


def test_the_mac_apply_script_refuses_rules_pfctl_rejects(mac_script):
    run, tmp = mac_script
    (tmp / "bad.pf").write_text("pass in broken\n")
    refused = run(str(tmp / "bad.pf"))
    assert refused.returncode == 2 and "rejected by pfctl -n; the running rules are unchanged" in refused.stderr
    assert "launchctl" not in (tmp / "calls").read_text()


def test_a_first_apply_that_is_never_confirmed_leaves_no_kit_rules(mac_script):
    run, tmp = mac_script
    (tmp / "first.pf").write_text(pf.ruleset(settings()))
    assert run("--timeout", "30", str(tmp / "first.pf")).returncode == 0
    assert run("--rollback").returncode == 0
    assert (tmp / "pf" / "anchor").read_text() == ""


# --- a whole deploy, --dry, against a fake Darwin host ---------------------------------------------------------------


def test_a_dry_deploy_to_a_fake_mac_lists_the_macos_operations_and_fails_on_none(tmp_path):
    data = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": FRESH, **GOOD}
    (tmp_path / "inventory.py").write_text(f"hosts = [('@fake/mini', {data!r})]\n")
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "--dry", "--json", str(tmp_path / "inventory.py"), "deploy.py"],
                         cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    planned = [op["name"] for op in json.loads(run.stdout[run.stdout.index("{"):])["plan"]]
    assert planned and all(name.startswith(("firewall | ", "openclaw | ", "base | ")) for name in planned), planned
    assert "firewall | Load the pf anchor openclaw-kit (rolled back in 45 s unless confirmed)" in planned
    assert not any("apt" in name or "nftables" in name or "systemd" in name for name in planned)
    # The roles without a macOS backend: skipped from one place (the platform table), said once for the host.
    said = [line for line in (run.stdout + run.stderr).splitlines() if "skipped" in line]
    assert len(said) == 1 and ("[@fake/mini] macOS 15 Sequoia: roles wireguard, nginx, fail2ban, logs, backup, audit, monitoring, "
                               "tls skipped: the kit has no macos backend for them yet") in said[0], said
    # Every operation of the common roles' code that a Mac runs too: the config gate, the secrets file, sshd.
    for name in ("base | sshd drop-in: check it with sshd -t, then put it in place at /etc/ssh/sshd_config.d/00-openclaw-kit.conf",
                 "openclaw | Secrets file /etc/openclaw/gateway.env (changed: OPENCLAW_GATEWAY_TOKEN)",
                 "openclaw | Config /etc/openclaw/openclaw.json: validated by the OpenClaw that will run it, then made live"):
        assert name in planned


def test_each_platform_has_a_backend_for_each_of_its_roles_that_picks_one():
    roles = {path.stem if path.is_file() else path.name for path in (REPO / "roles").iterdir()
             if path.suffix == ".py" and path.stem != "__init__" or (path / "__init__.py").is_file()}
    for row in PLATFORMS.values():
        assert row.roles <= roles, row.label
        # The roles that are packages pick their backend by one field of the row.
        for role, field in (("base", "family"), ("firewall", "firewall"), ("openclaw", "service_manager")):
            if role in row.roles:
                assert (REPO / "roles" / role / f"{getattr(row, field)}.py").is_file(), (row.label, role)
    assert {row.roles for key, row in PLATFORMS.items() if key[0] != "macOS"} == {frozenset(roles)}


def test_a_dry_deploy_to_a_mac_and_a_linux_host_together_gives_each_its_own_roles(tmp_path):
    from tests.unit.fake_host import FACTS, SETTINGS
    mac = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": FRESH, **GOOD}
    linux = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": FACTS, **SETTINGS}
    (tmp_path / "inventory.py").write_text(f"hosts = [('@fake/mini', {mac!r}), ('@fake/gw1', {linux!r})]\n")
    # Without -y: it would turn pyinfra's change detection off, and no host would be listed with a change.
    run = subprocess.run([sys.executable, "-m", "pyinfra", "--dry", "--json", str(tmp_path / "inventory.py"), "deploy.py"],
                         cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    plan = json.loads(run.stdout[run.stdout.index("{"):])["plan"]
    hosts = {op["name"]: set(op["hosts_with_change"]) | set(op["hosts_with_conditional_change"]) for op in plan}
    assert hosts["firewall | Load the pf anchor openclaw-kit (rolled back in 45 s unless confirmed)"] == {"@fake/mini"}
    assert {"@fake/gw1"} == set().union(*(h for name, h in hosts.items() if name.startswith(("nginx | ", "tls | "))))
    # The shared sshd drop-in is one operation for both hosts; the Mac's openclaw operations are the Mac's.
    assert hosts["base | sshd drop-in: check it with sshd -t, then put it in place at "
                 "/etc/ssh/sshd_config.d/00-openclaw-kit.conf"] == {"@fake/mini", "@fake/gw1"}
    assert hosts["openclaw | Gateway start script /usr/local/libexec/openclaw-kit-gateway"] == {"@fake/mini"}
    assert sum("skipped" in line for line in (run.stdout + run.stderr).splitlines()) == 1


def test_a_dry_deploy_to_a_mac_with_a_linux_only_setting_changes_nothing(tmp_path):
    data = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": FRESH, **GOOD, "ipv6_accept_ra": True}
    (tmp_path / "inventory.py").write_text(f"hosts = [('@fake/mini', {data!r})]\n")
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "--dry", str(tmp_path / "inventory.py"), "deploy.py"],
                         cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=180)
    assert run.returncode != 0
    assert "host @fake/mini: ipv6_accept_ra = True: a Linux sysctl" in run.stdout + run.stderr


def test_networks_in_the_pf_rules_are_networks():
    text = pf.ruleset(settings(**COMBINATIONS["private network"]))
    for found in re.findall(r"from \{ ([^}]*) \}", text):
        for net in found.split(", "):
            ipaddress.ip_network(net)


# --- the pf.conf reference, run here on Apple's recorded pf.conf with a stand-in pfctl -----------------------------


def pf_conf_reference(tmp_path, pfctl_check_fails: bool = False) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pfctl").write_text(f'#!/bin/sh\necho "pfctl $*" >> {tmp_path / "calls"}\n'
                                   f'case "$1" in -n) exit {1 if pfctl_check_fails else 0} ;; esac\n')
    (bin_dir / "pfctl").chmod(0o755)
    script = render("firewall", "macos/pf-conf-reference.sh.j2", pf_conf=str(tmp_path / "pf.conf"), lines=pf.PF_CONF_LINES)
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})


def test_pf_conf_gets_the_kits_lines_after_apples_and_only_once(tmp_path):
    apple = recorded("pf.conf")
    (tmp_path / "pf.conf").write_text(apple)
    assert pf_conf_reference(tmp_path).returncode == 0
    text = (tmp_path / "pf.conf").read_text()
    assert text == apple + "".join(f"{line}\n" for line in pf.PF_CONF_LINES), "Apple's lines kept, the kit's appended"
    assert pf_conf_reference(tmp_path).returncode == 0
    assert (tmp_path / "pf.conf").read_text() == text, "a second run adds nothing"
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [f"pfctl -n -f {tmp_path / 'pf.conf.openclaw-kit-new'}"] * 2, "checked, not loaded: pf runs pf.MAIN"


def test_a_pf_conf_pfctl_rejects_is_not_written(tmp_path):
    (tmp_path / "pf.conf").write_text(recorded("pf.conf"))
    run = pf_conf_reference(tmp_path, pfctl_check_fails=True)
    assert run.returncode == 1 and "pfctl -n rejected" in run.stderr
    assert (tmp_path / "pf.conf").read_text() == recorded("pf.conf")
    assert not list(tmp_path.glob("pf.conf.*")), "no candidate left behind"
