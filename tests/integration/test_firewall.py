"""Role firewall on real sandbox hosts: what is open to whom, idempotence and drift, other tables
left alone, a rejected file, both lockout guards and the rollback's timing."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

import sandbox
from roles.firewall.nftables import APPLY, DESIRED, FINGERPRINT, MARKER, PERSISTED, ROLLBACK_UNIT, TABLE
from tests.integration.conftest import REPO, changed_hosts, deploy_json, inventory_with, run_pyinfra, ssh

pytestmark = pytest.mark.sandbox

LOAD = "firewall | Load the firewall ruleset (rolled back in 45 s unless confirmed)"
CONFIRM = "firewall | Confirm the firewall over a new SSH connection"

# A listener that answers every connection and exits after 120 s without one (never left behind).
LISTENER = """
import socket
server = socket.create_server(("::", {port}), family=socket.AF_INET6, dualstack_ipv6=True)
server.settimeout(120)
while True:
    connection, _ = server.accept()
    connection.sendall(b"hello\\n")
    connection.close()
"""
# One connection attempt from a host: open, timeout (dropped) or refused (reached, nobody listening).
PROBE = """
import socket
try:
    socket.create_connection(({address!r}, {port}), timeout=3).close()
    print("open")
except socket.timeout:
    print("timeout")
except OSError as error:
    print("refused" if isinstance(error, ConnectionRefusedError) else f"error {{error}}")
"""



@pytest.fixture(scope="module")
def deployed(sandbox_state, kit_env):
    # Other modules may have deployed already: without the kit's table, this run must load and
    # confirm a ruleset on both hosts.
    for host in sandbox_state["hosts"]:
        ssh(sandbox_state, host["address"], f"nft delete table inet {TABLE} 2>/dev/null || true")
    return deploy_json(kit_env)


@pytest.fixture(scope="module")
def sbx1(sandbox_state) -> str:
    return sandbox_state["hosts"][0]["address"]


@pytest.fixture(scope="module")
def sbx2(sandbox_state) -> str:
    return sandbox_state["hosts"][1]["address"]


def remote_python(state: dict, address: str, code: str) -> str:
    return ssh(state, address, f"python3 -c {_quote(code)}").stdout.strip()


def probe(state: dict, source: str, address: str, port: int) -> str:
    return remote_python(state, source, PROBE.format(address=address, port=port))


def probe_from_controller(address: str, port: int) -> str:
    try:
        socket.create_connection((address, port), timeout=3).close()
        return "open"
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"


def start_listener(state: dict, address: str, port: int) -> str:
    pid = ssh(state, address, f"setsid nohup python3 -c {_quote(LISTENER.format(port=port))} >/dev/null 2>&1 & echo $!").stdout.strip()
    time.sleep(0.5)
    return pid


def stop_listener(state: dict, address: str, pid: str) -> None:
    ssh(state, address, f"kill {pid} 2>/dev/null || true", check=False)


def new_ssh(state: dict, address: str, command: str = "true", timeout: int = 3) -> subprocess.CompletedProcess:
    """A brand-new SSH connection (no multiplexing) with a short connect timeout."""
    argv = sandbox.ssh_command(address, state)
    argv[1:1] = ["-o", f"ConnectTimeout={timeout}", "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "LogLevel=ERROR"]
    return subprocess.run([*argv, command], capture_output=True, text=True, timeout=60)


def fingerprint(state: dict, address: str) -> str:
    return ssh(state, address, FINGERPRINT).stdout.strip()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


# --- a fresh deploy --------------------------------------------------------------------------------


def test_fresh_deploy_passes_the_firewall_checks(deployed, sandbox_state, kit_env):
    assert deployed["results"]["failed_hosts"] == []
    addresses = sorted(host["address"] for host in sandbox_state["hosts"])
    assert changed_hosts(deployed)[CONFIRM] == addresses
    verify = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify/test_firewall.py", "--inventory", "inventories/sandbox.py"],
        cwd=REPO, env=kit_env, capture_output=True, text=True, timeout=600,
    )
    assert verify.returncode == 0, verify.stdout[-4000:]
    assert " passed" in verify.stdout and " failed" not in verify.stdout


@pytest.fixture
def gateway_stopped(deployed, sandbox_state, sbx1):
    """The gateway holds its port on loopback; stop it so a listener can take the port on every address."""
    was_running = ssh(sandbox_state, sbx1, "systemctl is-active --quiet openclaw-gateway", check=False).returncode == 0
    if was_running:
        ssh(sandbox_state, sbx1, "systemctl stop openclaw-gateway")
    yield
    if was_running:
        ssh(sandbox_state, sbx1, "systemctl start openclaw-gateway")


def test_gateway_port_closed_from_outside_open_on_loopback(gateway_stopped, sandbox_state, sbx1, sbx2):
    port = 18789
    pid = start_listener(sandbox_state, sbx1, port)
    try:
        assert probe(sandbox_state, sbx1, "127.0.0.1", port) == "open", "the listener is not up"
        assert probe(sandbox_state, sbx1, "::1", port) == "open"
        # Dropped (a timeout), not refused: the listener is there, the firewall hides it.
        assert probe(sandbox_state, sbx2, sbx1, port) == "timeout"
        # Not even the admin address gets through.
        assert probe_from_controller(sbx1, port) == "timeout"
    finally:
        stop_listener(sandbox_state, sbx1, pid)


def test_ssh_from_admin_addresses_and_ssh_cidrs(deployed, sandbox_state, sbx1, sbx2):
    # The sandbox inventory puts its own network in ssh_cidrs (the fail2ban tests attack from sbx2).
    assert probe(sandbox_state, sbx2, sbx1, 22) == "open"
    assert new_ssh(sandbox_state, sbx1).returncode == 0


@pytest.fixture
def outsider(deployed, sandbox_state, sbx1):
    """A network namespace on this machine, on the sandbox's bridge, with an address outside admin_cidrs
    and ssh_cidrs (the whole bridge network): a stranger next to the host. sbx1 gets an on-link route
    to it for the test, so its answers come straight back (nothing is routed through this machine)."""
    namespace, outer, inner = f"{sandbox.BRIDGE}-out", f"vo-{sandbox.BRIDGE}", f"vi-{sandbox.BRIDGE}"
    address, network = "198.51.100.7", "198.51.100.0/24"
    subprocess.run(["ip", "netns", "del", namespace], capture_output=True)  # left by an interrupted run
    setup = [["ip", "netns", "add", namespace],
             ["ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", namespace],
             ["ip", "link", "set", outer, "master", sandbox.BRIDGE, "up"],
             ["ip", "-n", namespace, "link", "set", "lo", "up"],
             ["ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", inner],
             ["ip", "-n", namespace, "link", "set", inner, "up"],
             ["ip", "-n", namespace, "route", "add", str(sandbox.NETWORK), "dev", inner]]
    try:
        for command in setup:
            subprocess.run(command, check=True, capture_output=True)
        ssh(sandbox_state, sbx1, f"ip route add {network} dev host0")
        yield lambda port: subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", PROBE.format(address=sbx1, port=port)],
                                          capture_output=True, text=True, timeout=30).stdout.strip()
    finally:
        ssh(sandbox_state, sbx1, f"ip route del {network} dev host0", check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def test_ssh_is_dropped_for_an_address_outside_admin_cidrs_and_ssh_cidrs(outsider):
    # Web ports answer the stranger: the path works both ways, so what SSH gets is the firewall's doing.
    assert outsider(80) == "open"
    assert outsider(22) == "timeout", "SSH must be dropped (no answer at all), not refused"


def test_web_ports_open_to_the_world_over_ipv4_and_ipv6(deployed, sandbox_state, sbx1, sbx2):
    pids = [start_listener(sandbox_state, sbx1, port) for port in (80, 443)]
    try:
        for port in (80, 443):
            # "open" means the firewall let it through; a port nginx already holds answers too.
            assert probe(sandbox_state, sbx2, sbx1, port) == "open"
        # Over link-local IPv6 the hosts first have to find each other: neighbour discovery works.
        link_local = ssh(sandbox_state, sbx1, "ip -6 -o addr show dev host0 scope link | awk '{print $4}' | cut -d/ -f1").stdout.strip()
        assert link_local.startswith("fe80:")
        assert probe(sandbox_state, sbx2, f"{link_local}%host0", 80) == "open"
    finally:
        for pid in pids:
            stop_listener(sandbox_state, sbx1, pid)


# --- idempotence, drift, other tables -----------------------------------------------------------------


def test_second_run_changes_nothing_in_the_firewall(deployed, kit_env):
    started = time.monotonic()
    second = deploy_json(kit_env)
    elapsed = time.monotonic() - started
    changed = {name: hosts for name, hosts in changed_hosts(second).items() if name.startswith("firewall |")}
    assert changed == {}
    assert second["results"]["totals"]["error"] == 0
    print(f"no-op deploy.py run: {elapsed:.1f} s")


@pytest.fixture
def foreign_table(sandbox_state, sbx1, sbx2):
    """A table the kit does not own, with a rule in it, on both hosts."""
    for address in (sbx1, sbx2):
        ssh(sandbox_state, address, "nft add table ip foreign && nft add chain ip foreign keep && nft add rule ip foreign keep counter")
    yield
    for address in (sbx1, sbx2):
        ssh(sandbox_state, address, "nft delete table ip foreign", check=False)


def test_drift_is_undone_and_other_tables_and_bans_survive(deployed, foreign_table, sandbox_state, kit_env, sbx1, sbx2):
    confirmed = fingerprint(sandbox_state, sbx1)
    ssh(sandbox_state, sbx1, f"nft add rule inet {TABLE} input tcp dport 2222 accept")
    ssh(sandbox_state, sbx1, f"nft add element inet {TABLE} banned_v4 '{{ 192.0.2.7 timeout 1h }}'")
    ssh(sandbox_state, sbx2, f"nft delete table inet {TABLE}")

    changed = changed_hosts(deploy_json(kit_env))
    assert changed[LOAD] == sorted([sbx1, sbx2]) and changed[CONFIRM] == sorted([sbx1, sbx2])

    assert "dport 2222" not in ssh(sandbox_state, sbx1, f"nft list table inet {TABLE}").stdout
    assert fingerprint(sandbox_state, sbx1) == confirmed
    assert fingerprint(sandbox_state, sbx2) == confirmed, "the deleted table is back, as on the other host"
    assert "192.0.2.7" in ssh(sandbox_state, sbx1, f"nft list set inet {TABLE} banned_v4").stdout, "a reload unbanned someone"
    for address in (sbx1, sbx2):
        assert "counter" in ssh(sandbox_state, address, "nft list table ip foreign").stdout
    assert changed_hosts(deploy_json(kit_env)).get(LOAD) is None, "the corrected firewall is stable"


def test_restarting_nftables_keeps_other_tables(deployed, foreign_table, sandbox_state, sbx1):
    confirmed = fingerprint(sandbox_state, sbx1)
    ssh(sandbox_state, sbx1, "systemctl restart nftables")
    assert "counter" in ssh(sandbox_state, sbx1, "nft list table ip foreign").stdout
    assert fingerprint(sandbox_state, sbx1) == confirmed, "the persisted file is the confirmed ruleset"


# --- the apply script on its own ---------------------------------------------------------------------


def test_a_file_nft_rejects_changes_nothing(deployed, sandbox_state, sbx1):
    before = fingerprint(sandbox_state, sbx1)
    broken = f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\ntable inet {TABLE} {{ chain input {{ tcp dport ssh acept }} }}\n"
    ssh(sandbox_state, sbx1, f"printf %s {_quote(broken)} > /tmp/broken.nft")
    run = ssh(sandbox_state, sbx1, f"{APPLY} --timeout 10 /tmp/broken.nft", check=False)
    assert run.returncode == 2
    assert "rejected by nft -c; the running ruleset is unchanged" in run.stderr
    assert "Error:" in run.stderr and "acept" in run.stderr, "nft's own message is shown"
    assert fingerprint(sandbox_state, sbx1) == before
    assert ssh(sandbox_state, sbx1, f"systemctl is-active {ROLLBACK_UNIT}.timer", check=False).returncode != 0, "nothing was armed"


def test_an_unconfirmed_ruleset_that_locks_the_admin_out_rolls_back_by_itself(deployed, sandbox_state, sbx1):
    timeout = 10
    gateway = sandbox_state["gateway"]
    before = fingerprint(sandbox_state, sbx1)
    recorded = ssh(sandbox_state, sbx1, f"cat {MARKER}; sha256sum {PERSISTED}").stdout
    ssh(sandbox_state, sbx1, f"nft add element inet {TABLE} banned_v4 '{{ 192.0.2.8 timeout 1h }}'")
    # New SSH connections from the controller are dropped; the one running the script survives.
    lockout = (f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n"
               f"table inet {TABLE} {{\n chain input {{\n  type filter hook input priority filter; policy accept;\n"
               f"  ct state new tcp dport 22 ip saddr {gateway} drop\n }}\n}}\n")
    ssh(sandbox_state, sbx1, f"printf %s {_quote(lockout)} > /tmp/lockout.nft")
    applied = ssh(sandbox_state, sbx1, f"{APPLY} --timeout {timeout} /tmp/lockout.nft", check=False)
    loaded_at = time.monotonic()
    assert applied.returncode == 0, applied.stderr

    assert new_ssh(sandbox_state, sbx1).returncode != 0, "the lockout ruleset did not lock the controller out"
    while new_ssh(sandbox_state, sbx1, timeout=1).returncode != 0:
        assert time.monotonic() - loaded_at < timeout + 15, "the host did not roll back by itself"
        time.sleep(0.5)
    back_after = time.monotonic() - loaded_at
    print(f"rollback: reachable again {back_after:.1f} s after the load (timeout {timeout} s)")
    assert back_after >= timeout - 2, "reachable before the rollback was due"

    assert fingerprint(sandbox_state, sbx1) == before, "the previous table is back"
    assert "192.0.2.8" in ssh(sandbox_state, sbx1, f"nft list set inet {TABLE} banned_v4").stdout
    assert ssh(sandbox_state, sbx1, f"cat {MARKER}; sha256sum {PERSISTED}").stdout == recorded, "nothing was persisted"
    # The host's own clock: from the load to the rollback.
    journal = ssh(sandbox_state, sbx1, "journalctl -t openclaw-kit-firewall -n 2 -o short-unix --no-pager").stdout.splitlines()
    assert "loaded /tmp/lockout.nft" in journal[0] and "rolled back" in journal[1], journal
    fired_after = float(journal[1].split()[0]) - float(journal[0].split()[0])
    print(f"rollback fired {fired_after:.2f} s after the load")
    assert timeout - 0.5 <= fired_after <= timeout + 3
    again = ssh(sandbox_state, sbx1, f"{APPLY} --confirm", check=False)
    assert again.returncode == 3 and "nothing to confirm" in again.stderr


# --- the lockout guards inside a deploy -----------------------------------------------------------------


def test_a_deploy_whose_admin_cidrs_exclude_the_controller_changes_nothing(deployed, sandbox_state, kit_env, tmp_path, sbx1):
    ssh(sandbox_state, sbx1, f"echo 'not the ruleset' > {DESIRED}")  # the deploy would rewrite this
    try:
        run = run_pyinfra(kit_env, inventory=inventory_with(tmp_path, admin_cidrs=["192.0.2.0/24"]))
        output = run.stdout + run.stderr
        assert run.returncode != 0
        assert "no host was changed" in output
        assert "deploy problem" in output and "settings problem" not in output, "a lockout is not a settings problem"
        assert f"this deploy connects from {sandbox_state['gateway']}, which is not in admin_cidrs = ['192.0.2.0/24']" in output
        assert f"host {sbx1}:" in output or f"host {sandbox_state['hosts'][1]['address']}:" in output
        assert "Beginning operation run" not in output
        assert ssh(sandbox_state, sbx1, f"cat {DESIRED}").stdout == "not the ruleset\n"
    finally:
        ssh(sandbox_state, sbx1, f"cp {PERSISTED} {DESIRED}")


def test_a_deploy_on_another_ssh_port_than_sshd_port_changes_nothing(deployed, kit_env, tmp_path):
    run = run_pyinfra(kit_env, inventory=inventory_with(tmp_path, sshd_port=2222))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "this deploy connects to SSH port 22, but sshd_port = 2222" in output
    assert "Beginning operation run" not in output


def test_a_deploy_whose_rules_cut_new_connections_is_rolled_back_and_fails(deployed, sandbox_state, kit_env, tmp_path, sbx1, sbx2):
    # Guard 1 passes (right address, right port), but SSH is opened on an interface the host
    # does not have: only the confirmation over a new connection can notice.
    before = {address: fingerprint(sandbox_state, address) for address in (sbx1, sbx2)}
    started = time.monotonic()
    run = run_pyinfra(kit_env, inventory=inventory_with(tmp_path, public_interface="eth9"))
    elapsed = time.monotonic() - started
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "the new firewall ruleset was NOT kept" in output
    assert "a new SSH connection now works again" in output
    for address in (sbx1, sbx2):
        assert new_ssh(sandbox_state, address).returncode == 0
        assert fingerprint(sandbox_state, address) == before[address]
    print(f"failed deploy with rollback: {elapsed:.1f} s")
