"""The WireGuard mesh on three real sandbox hosts: up, every pair talks over it, hosts join and
leave with one re-run, a deleted key is replaced and every peer follows in the same run, private
keys never appear in any output, and a second run changes nothing.

Cost: a third host joins the sandbox for this module only (and leaves at its end), and the deploys
run the roles a mesh needs (tests/integration/mesh_deploy.py), not OpenClaw."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox
from tests.integration.conftest import HOSTS, REPO, ssh

pytestmark = pytest.mark.sandbox

CIDR = "10.99.0.0/24"


def mesh_address(index: int) -> str:
    return f"10.99.0.{index + 1}"


@pytest.fixture(scope="module")
def mesh_sandbox(sandbox_state):
    state = sandbox.up(3)
    yield state
    sandbox.up(HOSTS)


def mesh_inventory(tmp_path, state: dict, count: int, **extra) -> str:
    """The sandbox inventory's first `count` hosts, each with its mesh address."""
    path = tmp_path / f"mesh{count}.py"
    path.write_text(
        "import importlib.util\n"
        f"_spec = importlib.util.spec_from_file_location('_sandbox_inventory', {str(REPO / 'inventories' / 'sandbox.py')!r})\n"
        "_module = importlib.util.module_from_spec(_spec)\n"
        "_spec.loader.exec_module(_module)\n"
        "_hosts, _data = _module.sandbox\n"
        f"sandbox = ([(name, {{**data, 'private_network': {{'cidr': {CIDR!r}, 'address': f'10.99.0.{{i + 1}}'}}}})\n"
        f"            for i, (name, data) in enumerate(_hosts[:{count}])], {{**_data, **{extra!r}}})\n"
    )
    return str(path)


def deploy(env: dict, inventory: str, *flags: str) -> tuple[dict, str]:
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "--json", *flags, inventory, "tests/integration/mesh_deploy.py"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    return json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("{"):])[0], output


def changed(result: dict) -> dict[str, list[str]]:
    return {op["name"]: op["success"] for op in result["results"]["operations"] if op["success"]}


def private_keys(state: dict, count: int) -> list[str]:
    return [ssh(state, h["address"], "cat /etc/wireguard/wg0.key").stdout.strip() for h in state["hosts"][:count]]


def public_key(state: dict, index: int) -> str:
    return ssh(state, state["hosts"][index]["address"], "wg pubkey < /etc/wireguard/wg0.key").stdout.strip()


def assert_mesh(state: dict, count: int) -> None:
    """Every pair pings over the mesh, and each host lists exactly the others as peers."""
    hosts = state["hosts"][:count]
    for h in hosts:  # the sandbox image has no ping; apt goes through the proxy the base role set
        ssh(state, h["address"], "command -v ping >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iputils-ping >/dev/null")
    for (i, a), (j, b) in itertools.permutations(enumerate(hosts), 2):
        run = ssh(state, a["address"], f"ping -c 1 -W 2 {mesh_address(j)} || ping -c 3 -W 3 {mesh_address(j)}", check=False)
        assert run.returncode == 0, f"{a['name']} cannot ping {b['name']} over the mesh: {run.stdout}{run.stderr}"
    for i, h in enumerate(hosts):
        peers = set(ssh(state, h["address"], "wg show wg0 peers").stdout.split())
        assert peers == {public_key(state, j) for j in range(count) if j != i}, h["name"]


@pytest.fixture(scope="module")
def outputs():
    return []


def test_two_hosts_then_a_third_joins_with_one_run(mesh_sandbox, kit_env, tmp_path, outputs):
    state = mesh_sandbox
    result, output = deploy(kit_env, mesh_inventory(tmp_path, state, 2))
    outputs.append(output)
    assert_mesh(state, 2)
    result, output = deploy(kit_env, mesh_inventory(tmp_path, state, 3), "-vvv", "--diff")
    outputs.append(output)
    assert_mesh(state, 3)
    for key in private_keys(state, 3):
        assert key and all(key not in text for text in outputs), "a private key reached the output"


def test_second_run_changes_nothing(mesh_sandbox, kit_env, tmp_path, outputs):
    result, output = deploy(kit_env, mesh_inventory(tmp_path, mesh_sandbox, 3))
    outputs.append(output)
    assert changed(result) == {}


def test_verify_sees_every_handshake_and_path(mesh_sandbox, kit_env, tmp_path):
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify/test_wireguard.py",
                          "--inventory", mesh_inventory(tmp_path, mesh_sandbox, 3)],
                         cwd=REPO, env=kit_env, capture_output=True, text=True, timeout=300)
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


def test_deleted_key_is_replaced_and_every_peer_follows_in_one_run(mesh_sandbox, kit_env, tmp_path, outputs):
    state = mesh_sandbox
    old = public_key(state, 1)
    old_private = private_keys(state, 3)[1]
    ssh(state, state["hosts"][1]["address"], "rm /etc/wireguard/wg0.key")
    result, output = deploy(kit_env, mesh_inventory(tmp_path, state, 3), "-vvv", "--debug", "--diff")
    outputs.append(output)
    assert public_key(state, 1) != old
    assert_mesh(state, 3)
    for key in [old_private, *private_keys(state, 3)]:
        assert all(key not in text for text in outputs), "a private key reached the output"
    result, output = deploy(kit_env, mesh_inventory(tmp_path, state, 3))
    assert changed(result) == {}


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
    two_extra = {"management": management, "private_network": {"cidr": CIDR, "address": mesh_address(1), "endpoint": two["address"]}}
    if over_mesh:
        two_extra.update(ssh_config_file=str(ssh_config), ssh_known_hosts_file=str(known_hosts))
    path = tmp_path / f"private-{over_mesh}-{management}.py"
    path.write_text(
        "import importlib.util\n"
        f"_spec = importlib.util.spec_from_file_location('_sandbox_inventory', {str(REPO / 'inventories' / 'sandbox.py')!r})\n"
        "_module = importlib.util.module_from_spec(_spec)\n"
        "_spec.loader.exec_module(_module)\n"
        "(_one, _one_data), (_two, _two_data) = _module.sandbox[0][:2]\n"
        f"sandbox = ([(_one, {{**_one_data, 'private_network': {{'cidr': {CIDR!r}, 'address': {mesh_address(0)!r}}}}}),\n"
        f"            ({(mesh_address(1) if over_mesh else two['address'])!r}, {{**_two_data, **{two_extra!r}}})],\n"
        "           {**_module.sandbox[1], 'sshd_tcp_forwarding': 'local'})\n"
    )
    return str(path), str(ssh_config), str(known_hosts)


def test_management_private_closes_public_ssh_and_needs_a_deploy_over_the_mesh(mesh_sandbox, kit_env, tmp_path, outputs):
    state = mesh_sandbox
    two = state["hosts"][1]
    # Run 1 of the switch: the mesh, and the jump host's forwarding, with management still public.
    public_inventory, ssh_config, known_hosts = private_management_inventory(tmp_path, state, over_mesh=False, management="public")
    deploy(kit_env, public_inventory)

    # management: private over the public address: refused before anything changes.
    refused_inventory, _, _ = private_management_inventory(tmp_path, state, over_mesh=False)
    run = subprocess.run([sys.executable, "-m", "pyinfra", "-y", refused_inventory, "tests/integration/mesh_deploy.py"],
                         cwd=REPO, env=kit_env, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0 and "management: private closes SSH on the public side" in run.stdout + run.stderr
    assert ssh(state, two["address"], "true", check=False).returncode == 0

    # Run 2, over the mesh: accepted; public SSH is then dropped, the mesh path works.
    private_inventory, _, _ = private_management_inventory(tmp_path, state, over_mesh=True)
    result, output = deploy(kit_env, private_inventory)
    outputs.append(output)
    public = ssh(state, two["address"], "true", check=False)
    assert public.returncode == 255 and "timed out" in public.stderr, public.stderr
    over_the_mesh = subprocess.run(["ssh", "-F", ssh_config, "-i", state["ssh_key"], "-o", f"UserKnownHostsFile={known_hosts}",
                                    "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                                    f"{state['ssh_user']}@{mesh_address(1)}", "echo $SSH_CONNECTION"],
                                   capture_output=True, text=True, timeout=60)
    assert over_the_mesh.returncode == 0 and over_the_mesh.stdout.split()[0] == mesh_address(0), over_the_mesh.stderr
    result, output = deploy(kit_env, private_inventory)
    assert changed(result) == {}

    # Back to public management, over the mesh, for the tests after this one.
    back, _, _ = private_management_inventory(tmp_path, state, over_mesh=True, management="public")
    deploy(kit_env, back)
    assert ssh(state, two["address"], "true", check=False).returncode == 0


def test_a_host_removed_from_the_inventory_leaves_the_others_peers(mesh_sandbox, kit_env, tmp_path):
    state = mesh_sandbox
    gone = public_key(state, 2)
    deploy(kit_env, mesh_inventory(tmp_path, state, 2))
    for h in state["hosts"][:2]:
        assert gone not in ssh(state, h["address"], "wg show wg0 peers").stdout
    assert_mesh(state, 2)
