"""The promises of the macOS path, checked on a Mac (testinfra's service and socket modules do not
work on macOS: launchctl print, lsof, pfctl, dscl instead). Only Macs run these (conftest.pytest_collection_modifyitems).
Written against the recorded outputs of tests/unit/fixtures/macos15_arm64/; never run on a real Mac yet."""

import hashlib
import json

import pytest

from openclaw_kit import launchd
from openclaw_kit.layout import GATEWAY_CLI
from openclaw_kit.secrets import env_file_content
from openclaw_kit.templates import render
from roles.base.macos import NOT_KEPT, POWER, SOCKETFILTERFW, PowerSettings
from roles.firewall import pf
from roles.openclaw import CONFIG_DIR, ENV_FILE, LOG_DIR
from roles.openclaw.launchd import LABEL, LIVE_CONFIG, NEWSYSLOG, STATE_DIR, USER, gateway_plist, newsyslog_data


def test_the_service_account_is_hidden_without_a_login_shell(target):
    found = dict(line.split(": ", 1) for line in target.output_of(
        f"dscl . -read /Users/{USER} UniqueID UserShell NFSHomeDirectory IsHidden").splitlines() if ": " in line)
    assert int(found["UniqueID"]) < 500 and found["UserShell"] == "/usr/bin/false"
    assert found["NFSHomeDirectory"] == STATE_DIR and found["IsHidden"] == "1"
    assert "admin" not in target.output_of(f"id -Gn {USER}").split()


@pytest.mark.parametrize(("path", "owner", "group", "mode"), [
    (STATE_DIR, USER, USER, "700"), (LOG_DIR, USER, USER, "750"), (CONFIG_DIR, "root", USER, "750"),
    (LIVE_CONFIG, USER, USER, "600"), (ENV_FILE, USER, USER, "600"),
])
def test_private_files_and_directories(target, path, owner, group, mode):
    assert target.output_of(f"stat -f '%Su %Sg %Lp' {path}").split() == [owner, group, mode]


def test_secrets_file_holds_the_current_secrets(target):
    expected = hashlib.sha256(env_file_content(target.settings.secrets())).hexdigest()
    assert target.output_of(f"shasum -a 256 {ENV_FILE}").split()[0] == expected, "hashes compared, values not shown"


def test_the_gateway_runs_as_a_launch_daemon_as_the_service_user(target):
    # Read by the deploy's own parser (openclaw_kit.launchd.LaunchdJob): launchctl print indents with
    # tabs or with spaces depending on the release, and only the job's own top-level lines count.
    job = launchd.LaunchdJob().process(target.output_of(f"launchctl print system/{LABEL}").splitlines())
    assert job is not None, f"{LABEL} is not loaded"
    assert job["path"] == launchd.plist_path(LABEL), job
    assert job["state"] == "running" and job["pid"], f"{LABEL} is loaded but not running: {job}"
    assert target.output_of(f"ps -o user= -p {job['pid']}").strip() == USER


def test_the_gateway_plist_is_the_rendered_one_and_no_reload_is_pending(target):
    expected = hashlib.sha256(launchd.plist_text(gateway_plist(target.settings)).encode()).hexdigest()
    assert target.output_of(f"shasum -a 256 {launchd.plist_path(LABEL)}").split()[0] == expected
    pending = launchd.reload_pending_path(LABEL)
    assert target.output_of(f"test -e {pending} && echo pending || echo none") == "none", (
        f"{pending} is there: a reload for a new plist failed or was cut off; deploy again")


def test_the_gateways_logs_are_rotated(target):
    expected = hashlib.sha256(render("openclaw", "macos/newsyslog.conf.j2", **newsyslog_data()).encode()).hexdigest()
    assert target.output_of(f"shasum -a 256 {NEWSYSLOG}").split()[0] == expected


def test_the_gateway_listens_on_loopback_only(target):
    listing = target.output_of(f"lsof -nP -iTCP:{target.settings.gateway_port} -sTCP:LISTEN -Fn")
    addresses = [line[1:].rsplit(":", 1)[0] for line in listing.splitlines() if line.startswith("n")]
    assert addresses and set(addresses) <= {"127.0.0.1", "[::1]"}, addresses


def test_the_gateway_answers_healthz(target):
    target.output_of(f"curl -fsS -o /dev/null http://127.0.0.1:{target.settings.gateway_port}/healthz")


def test_security_audit_has_no_critical_or_warning_findings(target):
    audit = json.loads(target.output_of(f"{GATEWAY_CLI} security audit --json 2>/dev/null"))
    assert audit["summary"]["critical"] == 0 and audit["summary"]["warn"] == 0, [
        (f["severity"], f["checkId"]) for f in audit["findings"] if f["severity"] in ("critical", "warn")]


def test_pf_is_enabled_with_the_kits_anchor_as_rendered(target):
    assert target.output_of("pfctl -s info 2>/dev/null | head -n 3").count("Status: Enabled") == 1
    # The running main ruleset references the anchor (`anchor "openclaw-kit" all`), after Apple's.
    main = target.output_of("pfctl -sr 2>/dev/null").splitlines()
    anchors = [line.split('"')[1] for line in main if line.startswith('anchor "')]
    assert pf.ANCHOR in anchors and anchors.index("com.apple/*") < anchors.index(pf.ANCHOR), main
    # The running anchor has the rendered rules, as pfctl lists them (one rule per address, `port = N`).
    rules = target.output_of(f"pfctl -a {pf.ANCHOR} -sr 2>/dev/null").splitlines()
    assert "block drop in log quick all" in rules and any(f"port = {target.settings.gateway_port}" in r for r in rules)
    assert any(f"port = {target.settings.sshd_port} flags any keep state" in r for r in rules if r.startswith("pass in")), rules
    assert any("port = 67 to any port = 68" in r for r in rules), "DHCPv4 replies"
    # The files the boot job loads: the kit's main ruleset and the confirmed anchor.
    assert target.output_of(f"shasum -a 256 {pf.MAIN}").split()[0] == hashlib.sha256(pf.main_ruleset().encode()).hexdigest()
    persisted = target.output_of(f"shasum -a 256 {pf.PERSISTED}").split()[0]
    assert persisted == hashlib.sha256(pf.ruleset(target.settings).encode()).hexdigest()
    conf = target.output_of(f"cat {pf.PF_CONF}").splitlines()
    assert all(line in conf for line in pf.PF_CONF_LINES) and 'anchor "com.apple/*"' in conf


def test_the_pf_boot_job_is_loaded_and_loads_the_kits_main_ruleset(target):
    job = target.output_of(f"launchctl print system/{pf.BOOT_LABEL}")
    assert f"path = /Library/LaunchDaemons/{pf.BOOT_LABEL}.plist" in job
    assert f"program = {pf.APPLY}" in job and "--boot" in job, job


def test_the_application_firewall_is_on_in_stealth_mode(target):
    state = target.output_of(f"{SOCKETFILTERFW} --getglobalstate; {SOCKETFILTERFW} --getstealthmode")
    # State 1, or 2 (on and blocking all incoming connections: "Firewall is blocking all non-essential ...").
    assert "(State = 1)" in state or "(State = 2)" in state
    assert "stealth mode is on" in state.lower() or "stealth mode enabled" in state.lower()


def test_sshd_takes_keys_only(target):
    effective = target.output_of("sshd -T 2>/dev/null").splitlines()
    for line in ("passwordauthentication no", "kbdinteractiveauthentication no", "permitemptypasswords no"):
        assert line in effective


def test_the_power_settings_are_those_of_a_server_or_recorded_as_not_kept(target):
    power = PowerSettings().process(target.output_of(PowerSettings().command()).splitlines())
    not_kept = set(target.output_of(f"cat {NOT_KEPT} 2>/dev/null || true").split())
    wrong = {key: power.get(key) for key, value in POWER.items() if power.get(key) != value and key not in not_kept}
    assert not wrong, f"power settings not as the kit set them (and not recorded in {NOT_KEPT}): {wrong}"
