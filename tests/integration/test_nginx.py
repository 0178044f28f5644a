"""The nginx role on real hosts: the host's public face, in front of the real OpenClaw gateway."""

import base64
import os
import socket
import ssl

import pytest

from roles.nginx import DEFAULT_SITE, LIVE_DIR
from sandbox import host_domain
from tests.integration.conftest import assert_drift_corrected, deploy_json, https_exchange, ssh

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


def test_https_reaches_the_gateway(deployed, pebble_root):
    address, domain = deployed
    answer, _ = https_exchange(address, domain, f"GET /healthz HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n".encode(),
                               trust=pebble_root, until=b"}")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b'"status":"live"' in body, "not the gateway's /healthz answer"
    assert b"Strict-Transport-Security: max-age=63072000" in head


def test_websocket_upgrade_reaches_the_gateway(deployed, pebble_root):
    address, domain = deployed
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET / HTTP/1.1\r\nHost: {domain}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\nOrigin: https://{domain}\r\n\r\n").encode()
    answer, _ = https_exchange(address, domain, request, trust=pebble_root, until=b"connect.challenge")
    assert answer.startswith(b"HTTP/1.1 101"), answer[:300]
    # The gateway's first WebSocket frame: its connect challenge (nginx never sends one).
    assert b'"event":"connect.challenge"' in answer


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
