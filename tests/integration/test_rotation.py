"""Secret rotation on a real host: change the value, re-run; the gateway takes the new one (restarted:
OpenClaw's `secrets reload` keeps the values its process started with), the old one gets 401
through nginx, the deploy names the changed secret and prints no value, and a second run changes nothing."""

import shlex
import subprocess

import pytest

from openclaw_kit.secrets import generate_token
from roles.openclaw import ENV_FILE
from sandbox import host_domain
from tests.integration.conftest import changed_hosts, deploy_json, inventory_with, run_pyinfra

pytestmark = pytest.mark.sandbox

# Run on the other sandbox host, an operator on the private network: POST /tools/invoke through the
# target's nginx with the token from stdin (never on a command line); prints the HTTP status.
INVOKE = """
import socket, ssl, sys
token = sys.stdin.read().strip()
request = ("POST /tools/invoke HTTP/1.1\\r\\nHost: {domain}\\r\\nAuthorization: Bearer " + token +
           "\\r\\nContent-Type: application/json\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\n{{}}").encode()
with socket.create_connection(({address!r}, 443), timeout=120) as raw, \\
        ssl._create_unverified_context().wrap_socket(raw, server_hostname={domain!r}) as tls:
    tls.sendall(request)
    print(tls.recv(64).split()[1].decode())
"""


def status_with(state: dict, operator: str, target: str, domain: str, token: str) -> str:
    code = INVOKE.format(address=target, domain=domain)
    run = subprocess.run(
        ["ssh", "-i", state["ssh_key"], "-o", f"UserKnownHostsFile={state['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", f"{state['ssh_user']}@{operator}", f"python3 -c {shlex.quote(code)}"],
        input=token, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


def test_rotating_the_gateway_token(sandbox_state, kit_env, tmp_path):
    first, second = sandbox_state["hosts"][:2]
    target, operator, domain = first["address"], second["address"], host_domain(first["name"])
    old, new = kit_env["OPENCLAW_GATEWAY_TOKEN"], generate_token()
    # The other sandbox host is the private network, so it reaches the gateway's API through nginx.
    inventory = inventory_with(tmp_path, private_cidrs=[f"{operator}/32"])
    rotated_env = {**kit_env, "OPENCLAW_GATEWAY_TOKEN": new}
    try:
        rotate = run_pyinfra(rotated_env, "--limit", target, inventory=inventory)
        output = rotate.stdout + rotate.stderr
        assert rotate.returncode == 0, output[-4000:].replace(new, "<new>").replace(old, "<old>")
        assert f"Secrets file {ENV_FILE} (changed: OPENCLAW_GATEWAY_TOKEN)" in output
        assert old not in output and new not in output

        # /tools/invoke with an empty body: 401 is the gateway refusing the token, 400 is the gateway
        # accepting it and refusing the empty request. The first call after a restart loads the
        # handler: on a busy 2-core machine that took more than 10 s, hence the long timeout.
        assert status_with(sandbox_state, operator, target, domain, old) == "401"
        assert status_with(sandbox_state, operator, target, domain, new) == "400"

        again = deploy_json(rotated_env, "--limit", target, inventory=inventory)
        assert changed_hosts(again) == {}, "the run after a rotation must change nothing"
    finally:
        restore = run_pyinfra(kit_env, "--limit", target)
    assert restore.returncode == 0, (restore.stdout + restore.stderr)[-4000:].replace(new, "<new>").replace(old, "<old>")
    assert "(changed: OPENCLAW_GATEWAY_TOKEN)" in restore.stdout + restore.stderr
