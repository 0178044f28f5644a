"""Real sandbox hosts for the integration tests (see sandbox/ and inventories/sandbox.py).

Without root or systemd-nspawn the tests skip with the reason, except under CI=true, where a
missing sandbox is a failure: CI must really run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox
from openclaw_kit.secrets import generate_token

REPO = Path(__file__).resolve().parents[2]
HOSTS = 2
# The first deploy writes the secrets file: every secret is new, so named (roles/openclaw/).
SECRETS_STEP = "openclaw | Secrets file /etc/openclaw/gateway.env (changed: OPENCLAW_GATEWAY_TOKEN)"


def pytest_collection_modifyitems(config, items):
    # The sandbox lifecycle test tears the sandbox down; run it after the deploy tests.
    items.sort(key=lambda item: item.nodeid.startswith("tests/integration/test_sandbox.py"))


@pytest.fixture(scope="session")
def sandbox_state():
    ok, reason = sandbox.available()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the sandbox cannot run: {reason}")
        pytest.skip(f"sandbox hosts unavailable: {reason}")
    state = sandbox.up(HOSTS)
    yield state
    # KIT_KEEP_SANDBOX=1: keep the hosts (and their deploys) for the next run while iterating.
    if os.environ.get("KIT_KEEP_SANDBOX") != "1":
        sandbox.down()


@pytest.fixture(scope="session")
def kit_env(sandbox_state):
    """The controller's environment for a deploy: secrets injected, never from a developer's .env."""
    return {**os.environ, "OPENCLAW_GATEWAY_TOKEN": generate_token()}


def run_pyinfra(env: dict, *args: str, inventory: str = "inventories/sandbox.py", timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pyinfra", "-y", *args, inventory, "deploy.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def deploy_json(env: dict, *args: str, **kwargs) -> dict:
    run = run_pyinfra(env, "--json", *args, **kwargs)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return json.loads(run.stdout[run.stdout.index("{"):])


def inventory_with(tmp_path: Path, **settings) -> str:
    """The sandbox inventory with some settings changed, as a user would write it."""
    path = tmp_path / "inventory.py"
    path.write_text(
        "import importlib.util\n"
        f"_spec = importlib.util.spec_from_file_location('_sandbox_inventory', {str(REPO / 'inventories' / 'sandbox.py')!r})\n"
        "_module = importlib.util.module_from_spec(_spec)\n"
        "_spec.loader.exec_module(_module)\n"
        f"sandbox = (_module.sandbox[0], {{**_module.sandbox[1], **{settings!r}}})\n"
    )
    return str(path)


def inventory_with_first_host(path: Path, **settings) -> str:
    """The sandbox inventory with some settings changed on its first host only, written to `path`."""
    path.write_text(
        "import importlib.util\n"
        f"_spec = importlib.util.spec_from_file_location('_sandbox_inventory', {str(REPO / 'inventories' / 'sandbox.py')!r})\n"
        "_module = importlib.util.module_from_spec(_spec)\n"
        "_spec.loader.exec_module(_module)\n"
        "_hosts, _group = _module.sandbox\n"
        f"sandbox = ([(_hosts[0][0], {{**_hosts[0][1], **{settings!r}}}), *_hosts[1:]], _group)\n"
    )
    return str(path)


def changed_hosts(result: dict) -> dict[str, list[str]]:
    """Operation name -> hosts it changed, for the operations that changed anything."""
    return {op["name"]: op["success"] for op in result["results"]["operations"] if op["success"]}


def ssh(state: dict, address: str, command: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    run = subprocess.run(
        ["ssh", "-i", state["ssh_key"], "-o", f"UserKnownHostsFile={state['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", f"{state['ssh_user']}@{address}", command],
        capture_output=True, text=True, timeout=timeout,
    )
    # With what ssh or the command said: 255 alone does not tell a refused connection from a command's exit.
    assert not check or run.returncode == 0, f"ssh {address} {command[:200]!r} exited {run.returncode}: {run.stderr[-2000:]}"
    return run


def run_verify(env: dict, inventory: str = "inventories/sandbox.py") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verify", "--inventory", inventory],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="session")
def pebble_root(sandbox_state) -> str:
    """The root of the certificates the sandbox's pebble issues (new each time pebble starts)."""
    import ssl
    import urllib.request

    api = ssl.create_default_context(cafile=sandbox_state["acme_ca_file"])
    return urllib.request.urlopen(sandbox_state["acme_roots_url"], context=api, timeout=10).read().decode()


def https_exchange(address: str, server_name: str, request: bytes, trust: str | None = None, until: bytes = b"\r\n\r\n",
                   timeout: float = 10) -> tuple[bytes, dict]:
    """Send one raw request over TLS to address:443 naming server_name; (what came back, the peer certificate)."""
    import socket
    import ssl
    import time

    context = ssl.create_default_context(cadata=trust) if trust else ssl._create_unverified_context()
    with socket.create_connection((address, 443), timeout=timeout) as raw, context.wrap_socket(raw, server_hostname=server_name) as tls:
        tls.sendall(request)
        data, deadline = b"", time.monotonic() + timeout
        while until not in data and time.monotonic() < deadline:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        return data, tls.getpeercert(binary_form=False) if trust else {}


def assert_drift_corrected(state: dict, env: dict, address: str, make: str, check: str) -> None:
    """Make a drift on a host (`check` must then fail), re-deploy: the re-run changes that host, `check`
    passes again, and the run after it changes nothing."""
    ssh(state, address, make)
    assert ssh(state, address, check, check=False).returncode != 0, "the drift did not take"
    rerun = deploy_json(env)
    assert address in sum(changed_hosts(rerun).values(), []), "the re-run did not see the drift"
    assert ssh(state, address, check, check=False).returncode == 0
    assert changed_hosts(deploy_json(env)) == {}, "the run after the correction must change nothing"
