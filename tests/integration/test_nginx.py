"""The nginx role on real hosts: the host's public face, in front of the real OpenClaw gateway.

The controller is a public client here (in admin_cidrs, but without the opt-in): it gets 403 for
everything but the public webhook; operators come through an SSH tunnel or, with the opt-in,
from admin_cidrs."""

import base64
import contextlib
import json
import os
import shlex
import socket
import ssl
import subprocess
import time

import pytest

from roles.nginx import DEFAULT_SITE, LIVE_DIR
from sandbox import host_domain
from tests.integration.conftest import (
    assert_drift_corrected,
    changed_hosts,
    deploy_json,
    https_exchange,
    inventory_with,
    ssh,
)

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def deployed(sandbox_state, kit_env):
    result = deploy_json(kit_env)
    assert result["results"]["failed_hosts"] == []
    first = sandbox_state["hosts"][0]
    return first["address"], host_domain(first["name"])


def http_status(address: str, host_header: str) -> bytes:
    with socket.create_connection((address, 80), timeout=10) as connection:
        connection.sendall(f"GET /some/path?x=1 HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
        return connection.recv(4096)


def test_http_redirects_to_https_with_308(deployed):
    address, domain = deployed
    answer = http_status(address, domain).decode()
    assert answer.startswith("HTTP/1.1 308"), answer
    assert f"\r\nLocation: https://{domain}/some/path?x=1\r\n" in answer


def test_unknown_host_gets_no_content(deployed):
    address, _ = deployed
    # Port 80: the connection is closed without a byte (444).
    assert http_status(address, "not-this-host.example") == b""
    # Port 443: the handshake itself is refused for a name nginx does not serve.
    with pytest.raises(ssl.SSLError):
        https_exchange(address, "not-this-host.example", b"GET / HTTP/1.1\r\nHost: not-this-host.example\r\n\r\n")


def get(path: str, domain: str, method: str = "GET", headers: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {domain}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n".encode()


def upgrade(domain: str, origin: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET / HTTP/1.1\r\nHost: {domain}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n").encode()


def assert_gateway_health(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b'"status":"live"' in body, "not the gateway's /healthz answer"


def assert_gateway_websocket(answer: bytes) -> None:
    assert answer.startswith(b"HTTP/1.1 101"), answer[:300]
    # The gateway's first WebSocket frame: its connect challenge (nginx never sends one).
    assert b'"event":"connect.challenge"' in answer


def assert_public_side_refuses_operators(address: str, domain: str, trust: str) -> None:
    for request in (get("/", domain), get("/healthz", domain), get("/v1/models", domain), get("/tools/invoke", domain, "POST"),
                    upgrade(domain, f"https://{domain}")):
        answer, _ = https_exchange(address, domain, request, trust=trust, until=b"</html>")
        assert answer.startswith(b"HTTP/1.1 403") and b"<center>nginx</center>" in answer, (request[:40], answer[:200])
        assert b"Strict-Transport-Security: max-age=63072000" in answer


def test_the_public_side_refuses_the_control_ui_and_the_api(deployed, pebble_root):
    assert_public_side_refuses_operators(*deployed, pebble_root)


def test_a_public_webhook_reaches_the_gateway(deployed, sandbox_state, pebble_root):
    address, domain = deployed
    answer, _ = https_exchange(address, domain, get("/hooks/openclaw-kit-test", domain, "POST"), trust=pebble_root)
    assert answer.startswith(b"HTTP/1.1 ") and not answer.startswith(b"HTTP/1.1 403"), answer[:300]
    log = ssh(sandbox_state, address, "tail -n 20 /var/log/nginx/openclaw-kit-access.log").stdout
    record = json.loads(next(line for line in reversed(log.splitlines()) if '"/hooks/openclaw-kit-test"' in line))
    assert record["upstream_status"] == str(record["status"]), "the gateway answered, not nginx"


@contextlib.contextmanager
def tunnel(state: dict, address: str, remote_port: int):
    """`ssh -N -L` from the controller to remote_port on the host's loopback: the local port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    process = subprocess.Popen(
        ["ssh", "-N", "-i", state["ssh_key"], "-o", f"UserKnownHostsFile={state['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{local}:127.0.0.1:{remote_port}",
         f"{state['ssh_user']}@{address}"], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", local)) == 0:
                    break
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.1)
        yield local
    finally:
        process.terminate()
        process.wait(timeout=10)


def exchange_on(port: int, request: bytes, until: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as channel:
        channel.sendall(request)
        data, deadline = b"", time.monotonic() + 10
        while until not in data and time.monotonic() < deadline:
            chunk = channel.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


# A WebSocket upgrade through nginx, sent from another sandbox host.
UPGRADE_FROM_HOST = """
import base64, os, socket, ssl
with socket.create_connection(({address!r}, 443), timeout=10) as raw, ssl._create_unverified_context().wrap_socket(raw, server_hostname={domain!r}) as tls:
    tls.sendall(({request!r}).encode())
    data = b""
    while b"connect.challenge" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            break
        data += chunk
print(data.decode(errors="replace"))
"""


def test_operators_come_through_an_ssh_tunnel_the_private_network_or_by_opt_in(deployed, sandbox_state, kit_env, pebble_root, tmp_path):
    address, domain = deployed
    other = sandbox_state["hosts"][1]["address"]
    try:
        private = deploy_json(kit_env, inventory=inventory_with(tmp_path, sshd_tcp_forwarding="local", private_cidrs=[f"{other}/32"]))
        assert private["results"]["failed_hosts"] == []
        with tunnel(sandbox_state, address, 18789) as local:
            # Straight to the gateway on loopback (OpenClaw accepts the Control UI's loopback origin). Not through nginx:
            # the gateway refuses proxied requests whose client is loopback (proxy_attribution_required).
            assert_gateway_websocket(exchange_on(local, upgrade("127.0.0.1", f"http://127.0.0.1:{local}"), b"connect.challenge"))
        # The private network (here: the other sandbox host) reaches the Control UI's WebSocket through nginx.
        request = upgrade(domain, f"https://{domain}").decode()
        code = UPGRADE_FROM_HOST.format(address=address, domain=domain, request=request)
        assert_gateway_websocket(ssh(sandbox_state, other, f"python3 -c {shlex.quote(code)}").stdout.encode())
        assert_public_side_refuses_operators(address, domain, pebble_root)

        exposed = deploy_json(kit_env, inventory=inventory_with(tmp_path, dangerously_expose_control_ui_to_admin_cidrs=True))
        assert exposed["results"]["failed_hosts"] == []
        assert_gateway_health(https_exchange(address, domain, get("/healthz", domain), trust=pebble_root, until=b"}")[0])
        assert_gateway_websocket(https_exchange(address, domain, upgrade(domain, f"https://{domain}"), trust=pebble_root,
                                                until=b"connect.challenge")[0])
    finally:
        back = deploy_json(kit_env)
    assert back["results"]["failed_hosts"] == [] and changed_hosts(back)
    assert_public_side_refuses_operators(address, domain, pebble_root)


def test_gateway_port_is_closed_from_outside(deployed, sandbox_state):
    address, _ = deployed
    port = 18789
    assert ssh(sandbox_state, address, f"ss -Hltn 'sport = :{port}' | grep -q 127.0.0.1:{port}", check=False).returncode == 0, \
        "the gateway must listen on loopback"
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=3).close()


DRIFTS = {
    "site file edited": (f"sed -i 's/limit_conn kit_addr 64;/limit_conn kit_addr 6400;/' {LIVE_DIR}/site.conf && systemctl reload nginx",
                         f"! grep -q 'kit_addr 6400' {LIVE_DIR}/site.conf"),
    "default site re-enabled": (f"ln -s /etc/nginx/sites-available/default {DEFAULT_SITE}", f"test ! -e {DEFAULT_SITE}"),
    "nginx stopped": ("systemctl stop nginx", "systemctl is-active -q nginx"),
}


@pytest.mark.parametrize("drift", DRIFTS, ids=list(DRIFTS))
def test_drift_is_corrected_by_a_rerun(deployed, sandbox_state, kit_env, drift):
    address, domain = deployed
    assert_drift_corrected(sandbox_state, kit_env, address, *DRIFTS[drift])
    assert http_status(address, domain).startswith(b"HTTP/1.1 308")
