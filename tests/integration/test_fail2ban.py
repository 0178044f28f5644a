"""Role fail2ban on real sandbox hosts: sbx2 plays the attacker against sbx1's SSH and nginx and
gets banned (in the kit's nftables set) and unbanned; the controller (admin_cidrs) is never
banned; drift is corrected, a second run changes nothing, a configuration fail2ban rejects never
goes live, and a firewall reload keeps the bans with their remaining time."""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
import time

import pytest

from roles.fail2ban import ETC, JAIL_FILE, NGINX_JAILS, REJECTED
from roles.firewall.nftables import APPLY, DESIRED, TABLE
from tests.integration.conftest import REPO, changed_hosts, deploy_json, run_pyinfra, ssh
from tests.integration.test_firewall import PROBE

pytestmark = pytest.mark.sandbox

ACTIVATE = "fail2ban | Check the candidate fail2ban configuration with fail2ban-client -t, then make it live"
BANTIME = 30  # fail2ban_bantime_seconds in inventories/sandbox.py

# One HTTPS request after another to the first host, with its domain as SNI and Host; prints each
# status, or "fail" (and stops) when no answer came.
HAMMER = """
import socket, ssl
context = ssl._create_unverified_context()
request = ({request!r}).replace("DOMAIN", {domain!r}).encode()
codes = []
for _ in range({count}):
    try:
        with socket.create_connection(({address!r}, 443), timeout=2) as raw, context.wrap_socket(raw, server_hostname={domain!r}) as tls:
            tls.sendall(request)
            codes.append(tls.recv(64).split()[1].decode())
    except (OSError, IndexError):
        codes.append("fail")
        break
print(" ".join(codes))
"""
# A webhook path: the stricter rate limit (5/s, burst 10), so requests in a row soon get 429.
RATE_LIMITED = "GET /hooks/openclaw-kit-test HTTP/1.1\r\nHost: DOMAIN\r\nConnection: close\r\n\r\n"
# The gateway's tools endpoint, with a token guess, from a public address: nginx's 403.
OPERATOR_PROBE = ("POST /tools/invoke HTTP/1.1\r\nHost: DOMAIN\r\nAuthorization: Bearer wrong\r\nContent-Type: application/json\r\n"
               "Content-Length: 2\r\nConnection: close\r\n\r\n{}")


@pytest.fixture(scope="module")
def hosts(sandbox_state) -> tuple[dict, dict]:
    return sandbox_state["hosts"][0], sandbox_state["hosts"][1]


@pytest.fixture(scope="module")
def deployed(sandbox_state, kit_env, hosts):
    # Other modules may have deployed already: without the kit's jail file this run must check,
    # promote and reload on both hosts.
    for host in hosts:
        ssh(sandbox_state, host["address"], f"rm -f {ETC}/{JAIL_FILE}")
    result = deploy_json(kit_env)
    assert result["results"]["failed_hosts"] == []
    return result


@pytest.fixture
def no_bans(deployed, sandbox_state, hosts):
    """Every test starts and ends with nobody banned on the first host."""
    target = hosts[0]["address"]
    ssh(sandbox_state, target, "fail2ban-client unban --all >/dev/null")
    yield target
    ssh(sandbox_state, target, "fail2ban-client unban --all >/dev/null", check=False)


def python_on(state: dict, address: str, code: str) -> str:
    return ssh(state, address, f"python3 -c {_quote(code)}").stdout.strip()


def probe(state: dict, source: str, address: str, port: int) -> str:
    return python_on(state, source, PROBE.format(address=address, port=port))


def banned(state: dict, target: str, address: str) -> bool:
    # A whole address: the controller's 10.231.N.1 is a prefix of the other host's 10.231.N.12.
    listed = ssh(state, target, f"nft list set inet {TABLE} banned_v4").stdout
    return re.search(rf"(?<![\d.]){re.escape(address)}(?![\d.])", listed) is not None


def wait_for(condition, seconds: float) -> float | None:
    """Seconds until condition() was true, or None if it never was within `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def jail_banned(state: dict, target: str, jail: str) -> list[str]:
    return ssh(state, target, f"fail2ban-client status {jail}").stdout.split("Banned IP list:", 1)[1].split()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


# --- the deploy --------------------------------------------------------------------------------------


def test_deploy_promotes_the_jails_and_verify_passes(deployed, hosts, kit_env):
    assert changed_hosts(deployed)[ACTIVATE] == sorted(host["address"] for host in hosts)
    verify = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify/test_fail2ban.py", "--inventory", "inventories/sandbox.py"],
        cwd=REPO, env=kit_env, capture_output=True, text=True, timeout=600,
    )
    assert verify.returncode == 0, verify.stdout[-4000:]
    assert " passed" in verify.stdout and " failed" not in verify.stdout


def test_second_run_changes_nothing(deployed, kit_env):
    assert changed_hosts(deploy_json(kit_env)) == {}


# --- bans -----------------------------------------------------------------------------------------------


def test_failed_ssh_logins_from_another_host_ban_it_until_the_bantime_is_over(no_bans, sandbox_state, hosts):
    target, attacker = no_bans, hosts[1]["address"]
    assert probe(sandbox_state, attacker, target, 22) == "open", "ssh_cidrs lets the other host reach SSH"
    attempt = (f"ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 "
               f"-o LogLevel=ERROR nosuchuser@{target} true")
    for tries in range(1, 16):
        ssh(sandbox_state, attacker, attempt, check=False)
        if wait_for(lambda: banned(sandbox_state, target, attacker), 2) is not None:
            break
    assert banned(sandbox_state, target, attacker), "no ban after 15 failed logins"
    print(f"banned after {tries} failed logins")
    assert attacker in jail_banned(sandbox_state, target, "sshd")
    # The set drops everything from the address, SSH and HTTPS alike.
    assert probe(sandbox_state, attacker, target, 22) == "timeout"
    assert probe(sandbox_state, attacker, target, 443) == "timeout"

    # fail2ban counts the ban time from the last failure it found (the journal reaches it some
    # seconds late) and prolongs it for failures found after the ban, so its own record says when
    # the ban ends: "IP \tSTART + SECONDS = END".
    record = next(line for line in ssh(sandbox_state, target, "fail2ban-client get sshd banip --with-time").stdout.splitlines()
                  if line.startswith(attacker))
    seconds, end_text = record.split("\t", 1)[1].split(" + ", 1)[1].split(" = ")
    assert int(seconds) >= BANTIME
    # The sandbox hosts share this machine's clock, and run in UTC.
    ends = datetime.datetime.strptime(end_text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.UTC).timestamp()
    assert wait_for(lambda: not banned(sandbox_state, target, attacker), BANTIME + 30) is not None, "still banned long after the ban time"
    late = time.time() - ends
    print(f"unbanned {late:+.1f} s from the end fail2ban recorded (bantime {BANTIME} s)")
    assert -1.5 <= late <= 10, "unbanned too early or too late"
    assert probe(sandbox_state, attacker, target, 22) == "open"


def test_the_controller_is_never_banned(no_bans, sandbox_state, hosts, kit_env):
    target, controller = no_bans, sandbox_state["gateway"]
    for _ in range(8):  # well beyond maxretry (3)
        subprocess.run(["ssh", "-o", f"UserKnownHostsFile={sandbox_state['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
                        "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=/dev/null",
                        f"nosuchuser@{target}", "true"], capture_output=True, timeout=60)
    # fail2ban saw the failures and ignored them because of ignoreip (admin_cidrs).
    ignored = wait_for(lambda: f"[sshd] Ignore {controller} by ip" in
                       ssh(sandbox_state, target, "journalctl -u fail2ban --no-pager -n 200; tail -n 200 /var/log/fail2ban.log 2>/dev/null",
                           check=False).stdout, 10)
    assert ignored is not None, "fail2ban never saw the controller's failed logins"
    assert not banned(sandbox_state, target, controller)
    assert controller not in jail_banned(sandbox_state, target, "sshd")
    result = deploy_json(kit_env)
    assert result["results"]["failed_hosts"] == [] and changed_hosts(result) == {}


@pytest.mark.parametrize(("jail", "request_text", "status"), [
    (NGINX_JAILS[0]["name"], RATE_LIMITED, "429"),
    (NGINX_JAILS[1]["name"], OPERATOR_PROBE, "403"),
], ids=["429 rate limit", "403 operator API from a public address"])
def test_nginx_rejections_ban_the_client(no_bans, sandbox_state, hosts, jail, request_text, status):
    target, attacker, domain = no_bans, hosts[1]["address"], f"{hosts[0]['name']}.openclaw.test"  # as inventories/sandbox.py
    hammer = HAMMER.format(request=request_text, domain=domain, address=target, count=40)
    codes = python_on(sandbox_state, attacker, hammer).split()
    print("statuses:", " ".join(codes))
    assert status in codes, f"nginx never answered {status}"
    assert wait_for(lambda: banned(sandbox_state, target, attacker), 10) is not None
    assert attacker in jail_banned(sandbox_state, target, jail)
    # Once banned, nothing answers any more.
    assert python_on(sandbox_state, attacker, HAMMER.format(request=request_text, domain=domain, address=target, count=1)) == "fail"


# --- firewall reloads ---------------------------------------------------------------------------------------


def test_a_firewall_reload_keeps_bans_with_their_remaining_time(no_bans, sandbox_state, hosts):
    target = no_bans
    ssh(sandbox_state, target, f"nft add element inet {TABLE} banned_v4 '{{ 192.0.2.9 timeout 1h expires 10m }}'")
    ssh(sandbox_state, target, "fail2ban-client set sshd banip 192.0.2.10 >/dev/null")
    # The same file again, the way every deploy applies a ruleset: a new table replaces the old.
    ssh(sandbox_state, target, f"{APPLY} --timeout 30 {DESIRED} && {APPLY} --confirm")
    listing = ssh(sandbox_state, target, f"nft list set inet {TABLE} banned_v4").stdout
    assert "192.0.2.10" in listing, "a reload unbanned fail2ban's ban"
    element = next(part for part in listing.split(",") if "192.0.2.9" in part)
    assert "timeout 1h expires 9m" in element or "timeout 1h expires 10m" in element, f"remaining time reset: {element}"


# --- drift and a rejected configuration ----------------------------------------------------------------------


def test_an_edited_jail_file_is_put_back_and_fail2ban_reloaded(deployed, sandbox_state, hosts, kit_env):
    target = hosts[0]["address"]
    ssh(sandbox_state, target, f"sed -i 's/^maxretry = .*/maxretry = 99/' {ETC}/{JAIL_FILE} && fail2ban-client reload")
    assert ssh(sandbox_state, target, "fail2ban-client get sshd maxretry").stdout.strip() == "99"

    changed = changed_hosts(deploy_json(kit_env))
    assert changed.get(ACTIVATE) == [target]
    assert ssh(sandbox_state, target, "fail2ban-client get sshd maxretry").stdout.strip() == "3", "not reloaded"
    assert changed_hosts(deploy_json(kit_env)) == {}, "the run after the correction must change nothing"


def test_a_configuration_fail2ban_rejects_never_goes_live(deployed, sandbox_state, hosts, kit_env):
    target = hosts[0]["address"]
    # An admin's own jail with a filter that does not exist breaks the whole configuration; the
    # kit's next change must then be refused, not loaded.
    broken = f"{ETC}/jail.d/zz-broken.local"
    ssh(sandbox_state, target, f"printf '[broken]\\nenabled = true\\nfilter = no-such-filter\\nbackend = systemd\\n' > {broken}")
    ssh(sandbox_state, target, f"sed -i 's/^maxretry = .*/maxretry = 99/' {ETC}/{JAIL_FILE}")
    pid = ssh(sandbox_state, target, "systemctl show -p MainPID --value fail2ban").stdout.strip()
    try:
        run = run_pyinfra(kit_env)
        output = run.stdout + run.stderr
        assert run.returncode != 0
        assert REJECTED in output and "no-such-filter" in output, output[-3000:]
        assert "maxretry = 99" in ssh(sandbox_state, target, f"cat {ETC}/{JAIL_FILE}").stdout, "a rejected configuration was promoted"
        assert ssh(sandbox_state, target, "systemctl show -p MainPID --value fail2ban").stdout.strip() == pid, "fail2ban was restarted"
        assert ssh(sandbox_state, target, "fail2ban-client get sshd maxretry").stdout.strip() == "3", "the running fail2ban lost its config"
    finally:
        ssh(sandbox_state, target, f"rm -f {broken}")
    changed = changed_hosts(deploy_json(kit_env))
    assert changed.get(ACTIVATE) == [target], "the next run with a good configuration promotes it"
