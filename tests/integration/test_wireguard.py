"""The WireGuard mesh on three real sandbox hosts: up, every pair talks over it, hosts join and
leave with one re-run, a deleted or rotated key is replaced and every peer follows in the same run,
a host whose private_network is removed leaves the mesh for good, the Control UI and the operator
WebSocket answer over the mesh only, private keys and the mesh's preshared key never appear in any
output, a sudo user deploys it like root, and a second run changes nothing.

Cost: a third host joins the sandbox for this module only (and leaves at its end), and the deploys
run the roles a mesh needs (tests/integration/mesh_deploy.py); one full deploy.py run on the first
host (already deployed when the whole suite runs) for the Control UI over the mesh."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox
from roles.base.debian import APT_LOCK_WAIT_SECONDS
from sandbox import host_domain
from tests.integration.conftest import HOSTS, REPO, https_exchange, ssh
from tests.integration.test_nginx import assert_gateway_websocket, assert_public_side_refuses_operators, get, upgrade

pytestmark = pytest.mark.sandbox

CIDR = "10.99.0.0/24"
# The mesh-wide preshared key: a secret reference, its value only in the controller's environment.
PSK = {"preshared_key": "${OPENCLAW_KIT_TEST_MESH_PSK}"}


def mesh_address(index: int) -> str:
    return f"10.99.0.{index + 1}"


@pytest.fixture(scope="module")
def mesh_env(kit_env):
    """The controller's environment with a fresh preshared key (a sentinel: searched for in every output)."""
    return {**kit_env, "OPENCLAW_KIT_TEST_MESH_PSK": base64.b64encode(os.urandom(32)).decode()}


@pytest.fixture(scope="module")
def mesh_sandbox(sandbox_state):
    state = sandbox.up(3)
    yield state
    sandbox.up(HOSTS)


def mesh_inventory(tmp_path, state: dict, count: int, per_host: dict | None = None, without_mesh: int = 0, **extra) -> str:
    """The sandbox inventory's first `count` hosts, each with its mesh address (and per_host[index]'s
    private_network settings), then `without_mesh` hosts without private_network."""
    path = tmp_path / f"mesh{count}-{without_mesh}-{hashlib.sha256(repr((per_host, extra)).encode()).hexdigest()[:8]}.py"
    path.write_text(
        "import importlib.util\n"
        f"_spec = importlib.util.spec_from_file_location('_sandbox_inventory', {str(REPO / 'inventories' / 'sandbox.py')!r})\n"
        "_module = importlib.util.module_from_spec(_spec)\n"
        "_spec.loader.exec_module(_module)\n"
        "_hosts, _data = _module.sandbox\n"
        f"sandbox = ([(name, {{**data, 'private_network': {{'cidr': {CIDR!r}, 'address': f'10.99.0.{{i + 1}}', **{PSK!r},\n"
        f"                                                  **{per_host or {}!r}.get(i, {{}})}}}})\n"
        f"            for i, (name, data) in enumerate(_hosts[:{count}])] + _hosts[{count}:{count + without_mesh}],\n"
        f"           {{**_data, **{extra!r}}})\n"
    )
    return str(path)


def as_sudo_user(state: dict) -> dict:
    """Inventory data for a deploy as the hosts' admin user, every command through sudo (inventories/sandbox_admin.py)."""
    return {"ssh_user": state["hosts"][0]["admin_user"], "_sudo": True}  # the mesh hosts share one distro


def deploy(env: dict, inventory: str, *flags: str, deploy_file: str = "tests/integration/mesh_deploy.py") -> tuple[dict, str]:
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "--json", *flags, inventory, deploy_file],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    return json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("{"):])[0], output


def changed(result: dict) -> dict[str, list[str]]:
    return {op["name"]: op["success"] for op in result["results"]["operations"] if op["success"]}


def private_keys(state: dict, count: int) -> list[str]:
    return [ssh(state, h["address"], "cat /etc/wireguard/wg0.key").stdout.strip() for h in state["hosts"][:count]]


def assert_no_secret_in(outputs: list[str], state: dict, env: dict, count: int, more: tuple[str, ...] = ()) -> None:
    """No private key and no preshared key in any output; the preshared key did reach every peer."""
    psk = env["OPENCLAW_KIT_TEST_MESH_PSK"]
    for key in [*more, *private_keys(state, count), psk]:
        assert key and all(key not in text for text in outputs), "a private or preshared key reached the output"
    for h in state["hosts"][:count]:
        found = ssh(state, h["address"], "wg show wg0 preshared-keys").stdout.split()[1::2]
        assert found and all(each == psk for each in found), f"{h['name']}: the peers lack the mesh's preshared key"


def public_key(state: dict, index: int) -> str:
    return ssh(state, state["hosts"][index]["address"], "wg pubkey < /etc/wireguard/wg0.key").stdout.strip()


def assert_mesh(state: dict, count: int) -> None:
    """Every pair pings over the mesh, and each host lists exactly the others as peers."""
    hosts = state["hosts"][:count]
    for h in hosts:  # the sandbox image has no ping; apt goes through the proxy the base role set
        # and waits for dpkg's lock (the kit's setting) while unattended-upgrades is at work.
        ssh(state, h["address"], "command -v ping >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iputils-ping >/dev/null",
            timeout=APT_LOCK_WAIT_SECONDS + 120)
    for (i, a), (j, b) in itertools.permutations(enumerate(hosts), 2):
        # Up to ~20 s: after a config change a lost handshake is retried every 5 s (wireguard-go on a busy machine).
        run = ssh(state, a["address"], f"for try in 1 2 3 4 5 6 7 8 9 10; do ping -c 1 -W 2 {mesh_address(j)} && exit 0; done; exit 1",
                  check=False)
        assert run.returncode == 0, f"{a['name']} cannot ping {b['name']} over the mesh: {run.stdout}{run.stderr}"
    for i, h in enumerate(hosts):
        peers = set(ssh(state, h["address"], "wg show wg0 peers").stdout.split())
        assert peers == {public_key(state, j) for j in range(count) if j != i}, h["name"]


@pytest.fixture(scope="module")
def outputs():
    return []


def test_two_hosts_then_a_third_joins_with_one_run(mesh_sandbox, mesh_env, tmp_path, outputs):
    state = mesh_sandbox
    result, output = deploy(mesh_env, mesh_inventory(tmp_path, state, 2))
    outputs.append(output)
    assert_mesh(state, 2)
    result, output = deploy(mesh_env, mesh_inventory(tmp_path, state, 3), "-vvv", "--diff")
    outputs.append(output)
    assert_mesh(state, 3)
    assert_no_secret_in(outputs, state, mesh_env, 3)


def test_second_run_changes_nothing(mesh_sandbox, mesh_env, tmp_path, outputs):
    result, output = deploy(mesh_env, mesh_inventory(tmp_path, mesh_sandbox, 3))
    outputs.append(output)
    assert changed(result) == {}


def test_verify_sees_every_handshake_and_path(mesh_sandbox, mesh_env, tmp_path):
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify/test_wireguard.py",
                          "--inventory", mesh_inventory(tmp_path, mesh_sandbox, 3)],
                         cwd=REPO, env=mesh_env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "6 passed" in run.stdout, run.stdout[-3000:]


def test_keys_are_root_only_and_the_interface_comes_up_at_boot(mesh_sandbox):
    for h in mesh_sandbox["hosts"][:3]:
        found = ssh(mesh_sandbox, h["address"], "stat -c %a:%U /etc/wireguard/wg0.key /etc/wireguard; systemctl is-enabled wg-quick@wg0").stdout.split()
        assert found == ["600:root", "700:root", "enabled"], h["name"]


def test_ssh_over_the_mesh(mesh_sandbox):
    # From host 1 to host 3's mesh address: sshd answers there.
    banner = ssh(mesh_sandbox, mesh_sandbox["hosts"][0]["address"],
                 f"timeout 5 bash -c 'exec 3<>/dev/tcp/{mesh_address(2)}/22; head -c 4 <&3'").stdout
    assert banner == "SSH-"


def test_rotated_and_deleted_keys_are_renewed_and_every_peer_follows_in_one_run_as_a_sudo_user(
        mesh_sandbox, mesh_env, tmp_path, outputs):
    # Both ways to a new key in one run: key_rotation on hosts 1 and 3, a deleted key on host 2.
    state = mesh_sandbox
    before = [public_key(state, i) for i in range(3)]
    old_private = private_keys(state, 3)
    ssh(state, state["hosts"][1]["address"], "rm /etc/wireguard/wg0.key")
    label = f"test-{os.urandom(4).hex()}"  # new on every run: kept sandbox hosts may hold an earlier run's label
    rotated = mesh_inventory(tmp_path, state, 3, per_host={0: {"key_rotation": label}, 2: {"key_rotation": label}},
                             **as_sudo_user(state))
    result, output = deploy(mesh_env, rotated, "-vvv", "--debug", "--diff")
    outputs.append(output)
    after = [public_key(state, i) for i in range(3)]
    assert all(new != old for new, old in zip(after, before, strict=True)), "a host kept its key"
    assert_mesh(state, 3)
    for i in (0, 2):
        assert ssh(state, state["hosts"][i]["address"], "cat /etc/wireguard/wg0.key.rotation").stdout == label + "\n"
    assert_no_secret_in(outputs, state, mesh_env, 3, more=tuple(old_private))
    # The label is recorded: the same label again changes nothing, no label neither.
    result, output = deploy(mesh_env, rotated)
    assert changed(result) == {}
    assert [public_key(state, i) for i in range(3)] == after
    result, output = deploy(mesh_env, mesh_inventory(tmp_path, state, 3))
    assert changed(result) == {}


# A TLS exchange sent from a sandbox host (a mesh peer): what came back, and the sha256 of the certificate.
EXCHANGE_FROM_HOST = """
import hashlib, socket, ssl
with socket.create_connection(({address!r}, 443), timeout=10) as raw, ssl._create_unverified_context().wrap_socket(raw, server_hostname={domain!r}) as tls:
    tls.sendall({request!r})
    data = b""
    while {until!r} not in data:
        chunk = tls.recv(65536)
        if not chunk:
            break
        data += chunk
    print(hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest())
print(data.decode(errors="replace"))
"""


def exchange_from(state: dict, index: int, address: str, domain: str, request: bytes, until: bytes) -> tuple[str, bytes]:
    code = EXCHANGE_FROM_HOST.format(address=address, domain=domain, request=request, until=until)
    certificate, _, answer = ssh(state, state["hosts"][index]["address"], f"python3 -c {shlex.quote(code)}").stdout.partition("\n")
    return certificate, answer.encode()


def test_the_control_ui_and_the_operator_websocket_answer_over_the_mesh_only(mesh_sandbox, mesh_env, tmp_path, pebble_root):
    state = mesh_sandbox
    first = state["hosts"][0]
    address, domain = first["address"], host_domain(first["name"])
    # The whole kit on the first host, its mesh settings included; --limit: the mesh itself is left as it is.
    deploy(mesh_env, mesh_inventory(tmp_path, state, 3), "--limit", address, deploy_file="deploy.py")
    listening = ssh(state, address, "ss -Hltn 'sport = :443'").stdout
    assert "0.0.0.0:443" in listening or f"{mesh_address(0)}:443" in listening, listening

    token = mesh_env["OPENCLAW_GATEWAY_TOKEN"]
    authorization = f"Authorization: Bearer {token}\r\n"
    ui = get("/", domain, headers=authorization)
    websocket = upgrade(domain, f"https://{domain}").replace(b"\r\n\r\n", f"\r\n{authorization}\r\n".encode())
    # From a mesh peer (the second host) to the first host's mesh address: the same certificate and name.
    certificate, answer = exchange_from(state, 1, mesh_address(0), domain, ui, b"</html>")
    assert answer.startswith(b"HTTP/1.1 200") and b"<html" in answer.lower(), answer[:300]
    mesh_certificate, answer = exchange_from(state, 1, mesh_address(0), domain, websocket, b"connect.challenge")
    assert_gateway_websocket(answer)
    # The same host, from the same peer, over the public address: 403, the same certificate.
    public_certificate, answer = exchange_from(state, 1, address, domain, ui, b"</html>")
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    _, answer = exchange_from(state, 1, address, domain, websocket, b"</html>")
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert certificate == mesh_certificate == public_certificate
    # From the controller (a public, non-mesh address): 403 for all of it, while the webhook reaches the gateway.
    assert_public_side_refuses_operators(address, domain, pebble_root)
    answer, _ = https_exchange(address, domain, get("/hooks/openclaw-kit-test", domain, "POST"), trust=pebble_root)
    assert answer.startswith(b"HTTP/1.1 ") and not answer.startswith(b"HTTP/1.1 403"), answer[:300]
    log = ssh(state, address, "tail -n 20 /var/log/nginx/openclaw-kit-access.log").stdout
    record = json.loads(next(line for line in reversed(log.splitlines()) if '"/hooks/openclaw-kit-test"' in line))
    assert record["upstream_status"] == str(record["status"]), "the gateway answered, not nginx"


def private_management_inventory(tmp_path, state: dict, over_mesh: bool, management: str = "private") -> str:
    """Host 2 with `management`, reached over the mesh (through host 1, a mesh member acting as jump
    host, as an admin's laptop on the mesh would) or over its public address."""
    one, two = state["hosts"][:2]
    known_hosts = tmp_path / "known_hosts"
    lines = Path(state["known_hosts"]).read_text().splitlines()
    known_hosts.write_text("\n".join(lines + [line.replace(two["address"], mesh_address(1), 1) for line in lines
                                               if line.startswith(two["address"] + " ")]) + "\n")
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host {mesh_address(1)}\n  ProxyJump {one['address']}\n"
        f"Host {one['address']}\n  User {state['ssh_user']}\n  IdentityFile {state['ssh_key']}\n"
        f"  UserKnownHostsFile {state['known_hosts']}\n  StrictHostKeyChecking yes\n")
    two_extra = {"management": management, "private_network": {"cidr": CIDR, "address": mesh_address(1), "endpoint": two["address"], **PSK}}
    if over_mesh:
        two_extra.update(ssh_config_file=str(ssh_config), ssh_known_hosts_file=str(known_hosts))
    path = tmp_path / f"private-{over_mesh}-{management}.py"
    path.write_text(
        "import importlib.util\n"
        f"_spec = importlib.util.spec_from_file_location('_sandbox_inventory', {str(REPO / 'inventories' / 'sandbox.py')!r})\n"
        "_module = importlib.util.module_from_spec(_spec)\n"
        "_spec.loader.exec_module(_module)\n"
        "(_one, _one_data), (_two, _two_data) = _module.sandbox[0][:2]\n"
        f"sandbox = ([(_one, {{**_one_data, 'private_network': {{'cidr': {CIDR!r}, 'address': {mesh_address(0)!r}, **{PSK!r}}}}}),\n"
        f"            ({(mesh_address(1) if over_mesh else two['address'])!r}, {{**_two_data, **{two_extra!r}}})],\n"
        "           {**_module.sandbox[1], 'sshd_tcp_forwarding': 'local'})\n"
    )
    return str(path), str(ssh_config), str(known_hosts)


def test_management_private_closes_public_ssh_and_needs_a_deploy_over_the_mesh(mesh_sandbox, mesh_env, tmp_path, outputs):
    state = mesh_sandbox
    two = state["hosts"][1]
    # Run 1 of the switch: the mesh, and the jump host's forwarding, with management still public.
    public_inventory, ssh_config, known_hosts = private_management_inventory(tmp_path, state, over_mesh=False, management="public")
    deploy(mesh_env, public_inventory)

    # management: private over the public address: refused before anything changes.
    refused_inventory, _, _ = private_management_inventory(tmp_path, state, over_mesh=False)
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", refused_inventory, "tests/integration/mesh_deploy.py"],
                         cwd=REPO, env=mesh_env, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0 and "management: private closes SSH on the public side" in run.stdout + run.stderr
    assert ssh(state, two["address"], "true", check=False).returncode == 0

    # Run 2, over the mesh: accepted; public SSH is then dropped, the mesh path works.
    private_inventory, _, _ = private_management_inventory(tmp_path, state, over_mesh=True)
    result, output = deploy(mesh_env, private_inventory)
    outputs.append(output)
    public = ssh(state, two["address"], "true", check=False)
    assert public.returncode == 255 and "timed out" in public.stderr, public.stderr
    over_the_mesh = subprocess.run(["ssh", "-F", ssh_config, "-i", state["ssh_key"], "-o", f"UserKnownHostsFile={known_hosts}",
                                    "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                                    f"{state['ssh_user']}@{mesh_address(1)}", "echo $SSH_CONNECTION"],
                                   capture_output=True, text=True, timeout=60)
    assert over_the_mesh.returncode == 0 and over_the_mesh.stdout.split()[0] == mesh_address(0), over_the_mesh.stderr
    result, output = deploy(mesh_env, private_inventory)
    assert changed(result) == {}

    # Back to public management, over the mesh, for the tests after this one.
    back, _, _ = private_management_inventory(tmp_path, state, over_mesh=True, management="public")
    deploy(mesh_env, back)
    assert ssh(state, two["address"], "true", check=False).returncode == 0


def test_a_host_removed_from_the_inventory_leaves_the_others_peers(mesh_sandbox, mesh_env, tmp_path, outputs):
    state = mesh_sandbox
    gone = public_key(state, 2)
    result, output = deploy(mesh_env, mesh_inventory(tmp_path, state, 2))
    outputs.append(output)
    for h in state["hosts"][:2]:
        assert gone not in ssh(state, h["address"], "wg show wg0 peers").stdout
    assert_mesh(state, 2)


def test_a_host_whose_private_network_is_removed_leaves_the_mesh_for_good(mesh_sandbox, mesh_env, tmp_path, outputs):
    state = mesh_sandbox
    third = state["hosts"][2]["address"]
    assert ssh(state, third, "ip link show wg0", check=False).returncode == 0, "the third host is still up on the mesh"
    inventory = mesh_inventory(tmp_path, state, 2, without_mesh=1)
    result, output = deploy(mesh_env, inventory)
    outputs.append(output)
    left = ssh(state, third, "ip link show wg0; systemctl is-enabled wg-quick@wg0; ls -A /etc/wireguard; "
                            "nft list ruleset | grep -c -e wg0 -e 51820", check=False)
    assert "does not exist" in left.stderr and left.stdout.split() == ["disabled", "0"], left.stdout + left.stderr
    assert_mesh(state, 2)
    assert_no_secret_in(outputs, state, mesh_env, 2)
    result, output = deploy(mesh_env, inventory)
    assert changed(result) == {}
