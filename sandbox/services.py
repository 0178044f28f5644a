"""The helper services on the bridge address: tinyproxy, pebble and pebble-challtestsrv."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

from .files import _tail, _write
from .layout import GATEWAY, NETWORK, SandboxError, _host_address, _log, _paths, host_domain
from .processes import _alive, _pids, _spawn, _stop

SERVICE_TIMEOUT = 15                # seconds a service may take to listen
PORTS = {"tinyproxy": 8888, "pebble": 14000, "pebble_mgmt": 15000,
         "challtestsrv_dns": 8053, "challtestsrv": 8055}


def _register_dns(hosts: list[dict]) -> None:
    """Per-host A records in challtestsrv, which pebble asks when it validates a challenge."""
    import urllib.request

    for h in hosts:
        body = json.dumps({"host": host_domain(h["name"]) + ".", "addresses": [h["address"]]}).encode()
        request = urllib.request.Request(f"http://{GATEWAY}:{PORTS['challtestsrv']}/add-a", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            if answer.status != 200:
                raise SandboxError(f"challtestsrv refused the A record for {h['name']}: HTTP {answer.status}")


def _port_open(port: int, host: str = GATEWAY) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def _make_pebble_certs() -> None:
    """A throwaway CA and a server certificate for pebble's API on the bridge address.

    The CA key is not kept: it is only needed to sign this one certificate."""
    from openclaw_kit.certificates import certificate_authority, pem, server_certificate

    p = _paths()
    ca, ca_key = certificate_authority("openclaw-kit sandbox pebble CA", days=3 * 365)
    cert_pem, key_pem = server_certificate([GATEWAY], days=3 * 365, issuer=(ca, ca_key))
    _write(p["pebble_key"], key_pem.decode(), 0o600)
    _write(p["pebble_cert"], cert_pem.decode())
    _write(p["pebble_ca"], pem(ca).decode())


def _service_specs() -> dict[str, dict]:
    """How to start each service and how to recognise it in /proc."""
    p = _paths()
    first_host = _host_address(1)
    return {
        # DNS for pebble's validation: every name resolves to the first host
        # (its management API can set per-name answers).
        "challtestsrv": {
            "argv": ["pebble-challtestsrv", "-defaultIPv4", first_host, "-defaultIPv6", "",
                     "-dns01", f"{GATEWAY}:{PORTS['challtestsrv_dns']}", "-http01", "",
                     "-https01", "", "-tlsalpn01", "",
                     "-management", f"{GATEWAY}:{PORTS['challtestsrv']}"],
            "marker": f"{GATEWAY}:{PORTS['challtestsrv']}",
            "ports": [PORTS["challtestsrv"]],
        },
        "pebble": {
            "argv": ["pebble", "-config", str(p["pebble_conf"]),
                     "-dnsserver", f"{GATEWAY}:{PORTS['challtestsrv_dns']}"],
            "env": {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
            "marker": str(p["pebble_conf"]),
            "ports": [PORTS["pebble"], PORTS["pebble_mgmt"]],
        },
        "tinyproxy": {
            "argv": ["tinyproxy", "-d", "-c", str(p["tinyproxy_conf"])],
            "marker": str(p["tinyproxy_conf"]),
            "ports": [PORTS["tinyproxy"]],
        },
    }


def _service_pids(spec: dict) -> list[int]:
    return _pids(lambda a: os.path.basename(a[0]) == spec["argv"][0] and spec["marker"] in a)


def _render_service_configs() -> None:
    p = _paths()
    # Foreground tinyproxy logs to stderr (our log file); it never logs bodies.
    _write(p["tinyproxy_conf"], "\n".join([
        "# rendered by python -m sandbox; the kit's `proxy` setting points hosts here",
        "User nobody",
        "Group nogroup",
        f"Listen {GATEWAY}",
        f"Port {PORTS['tinyproxy']}",
        "Timeout 600",
        "MaxClients 100",
        "LogLevel Info",
        f"Allow {NETWORK}",
        "ConnectPort 443",       # CONNECT (https tunnels) only to 443
        "",
    ]))
    if not (p["pebble_ca"].exists() and p["pebble_cert"].exists() and p["pebble_key"].exists()):
        _make_pebble_certs()
    _write(p["pebble_conf"], json.dumps({"pebble": {
        "listenAddress": f"{GATEWAY}:{PORTS['pebble']}",
        "managementListenAddress": f"{GATEWAY}:{PORTS['pebble_mgmt']}",
        "certificate": str(p["pebble_cert"]),
        "privateKey": str(p["pebble_key"]),
        "httpPort": 80,
        "tlsPort": 443,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}, indent=2) + "\n")


def _start_service(name: str, spec: dict) -> int:
    log = _log(name)
    pid = _spawn(spec["argv"], log, spec.get("env"))
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while not all(_port_open(port) for port in spec["ports"]):
        if not _alive(pid):
            raise SandboxError(f"{name} exited right after start; {_tail(log)}")
        if time.monotonic() > deadline:
            _stop([pid], 5)
            raise SandboxError(f"{name} did not listen on {GATEWAY}:{spec['ports']} within "
                               f"{SERVICE_TIMEOUT} s; {_tail(log)}")
        time.sleep(0.2)
    return pid
