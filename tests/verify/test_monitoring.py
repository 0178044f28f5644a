"""Role monitoring: on every Linux host nothing of it answers beyond loopback; where monitoring is
enabled, its daemons run with the kit's checked configs and no scrape target is down."""

import hashlib
import json

import pytest

from roles.monitoring import ETC, PORTS, config_files

# Prometheus' API asked on the host itself (it listens on loopback only); python3 is there for pyinfra.
API = ("python3 -c 'import sys, urllib.request; "
       "sys.stdout.write(urllib.request.urlopen(\"http://127.0.0.1:9090\" + sys.argv[1], timeout=10).read().decode())' ")


def listening(target) -> dict[int, set[str]]:
    """Port -> the addresses a TCP socket listens on."""
    found: dict[int, set[str]] = {}
    for line in target.host.check_output("ss -Htln").splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        found.setdefault(int(port), set()).add(address.split("%")[0])
    return found


def test_no_monitoring_port_answers_beyond_loopback(target):
    sockets = listening(target)
    exposed = {port: sorted(sockets[port]) for port in PORTS if sockets.get(port, set()) - {"127.0.0.1"}}
    assert not exposed, f"monitoring ports listening beyond loopback: {exposed}"


@pytest.fixture
def enabled(target):
    if not target.settings.monitoring.enabled:
        pytest.skip("monitoring is not enabled in this host's settings")
    return target


def test_the_live_configs_are_the_kits(enabled):
    for files in config_files(enabled.settings).values():
        for relative, content in files.items():
            live = enabled.host.file(f"{ETC}/{relative}")
            assert live.exists and hashlib.sha256(live.content_string.encode()).hexdigest() == \
                hashlib.sha256(content.encode()).hexdigest(), f"{ETC}/{relative} differs from the kit's"


def test_every_daemon_runs_and_every_target_is_up(enabled):
    for service in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "prometheus-blackbox-exporter"):
        assert enabled.host.service(service).is_running, f"{service} is not running"
    targets = json.loads(enabled.host.check_output(API + "/api/v1/targets"))["data"]["activeTargets"]
    down = {target["labels"]["job"]: target.get("lastError") for target in targets if target["health"] == "down"}
    assert not down, f"scrape targets not up: {down}"
