"""Role monitoring on one real host: every target up, the exporters on loopback only, the gateway
stopped and its alert delivered to a webhook on the controller, resolved by a re-run, and a second
run that changes nothing. The other host keeps monitoring off."""

from __future__ import annotations

import json
import shlex
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from roles.logs import CRON_FILE
from roles.monitoring import CANDIDATES, ETC, PACKAGES, PORTS
from sandbox import host_domain
from tests.integration.conftest import changed_hosts, deploy_json, inventory_with_first_host, ssh

pytestmark = pytest.mark.sandbox

# Prometheus' API on the host itself: it listens on loopback only.
API = ("python3 -c 'import sys, urllib.request; "
       "sys.stdout.write(urllib.request.urlopen(\"http://127.0.0.1:9090\" + sys.argv[1], timeout=10).read().decode())' ")
# Connects to each port on the host's own non-loopback address: "refused" when nothing listens there.
PROBE = ("python3 -c 'import socket, sys\nfor port in sys.argv[2:]:\n    s = socket.socket()\n    s.settimeout(3)\n"
         "    print(port, s.connect_ex((sys.argv[1], int(port))))' ")


class Receiver:
    """An Alertmanager webhook receiver on the controller's bridge address: the JSON bodies it got."""

    def __init__(self, address: str):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://{address}:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, alertname: str, status: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.received:
                for alert in body["alerts"]:
                    if alert["labels"].get("alertname") == alertname and alert["status"] == status:
                        return alert
            time.sleep(1)
        raise AssertionError(f"no {status} {alertname} within {timeout}s; received: {json.dumps(self.received)[-2000:]}")


def monitoring_settings(url: str) -> dict:
    # Short intervals so the test sees an alert fire and resolve within a minute or two.
    return {"enabled": True, "webhook": {"url": url}, "scrape_interval": "5s", "group_wait": "1s",
            "group_interval": "5s", "repeat_interval": "1h",
            "alerts": {"gateway_down_for": "10s", "target_down_for": "10s"}}


def inventory_with_monitoring(tmp_path, monitoring: dict) -> str:
    """The sandbox inventory with monitoring on the first host only."""
    return inventory_with_first_host(tmp_path / "inventory-monitoring.py", monitoring=monitoring)


@pytest.fixture(scope="module")
def monitored(sandbox_state, kit_env, tmp_path_factory):
    receiver = Receiver(sandbox_state["gateway"])
    inventory = inventory_with_monitoring(tmp_path_factory.mktemp("monitoring"), monitoring_settings(receiver.url))
    address = sandbox_state["hosts"][0]["address"]
    started = time.monotonic()
    result = deploy_json(kit_env, inventory=inventory)
    assert result["results"]["failed_hosts"] == []
    print(f"\nmonitoring: first deploy {time.monotonic() - started:.0f}s")
    yield {"address": address, "inventory": inventory, "receiver": receiver}
    receiver.server.shutdown()
    # The other modules' deploys and checks expect monitoring off: the kit does not remove it (turning it
    # off leaves the host as it is), so the test does.
    units = " ".join(PACKAGES)
    ssh(sandbox_state, address, f"systemctl stop {units} && DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq {units} "
        f"&& rm -rf /etc/systemd/system/prometheus*.service.d {ETC} /var/lib/prometheus {CANDIDATES} && systemctl daemon-reload",
        timeout=300)


def api(state, address: str, path: str) -> dict:
    return json.loads(ssh(state, address, API + shlex.quote(path)).stdout)


def query(state, address: str, expression: str) -> list[dict]:
    return api(state, address, "/api/v1/query?" + urllib.parse.urlencode({"query": expression}))["data"]["result"]


def test_every_target_is_up(monitored, sandbox_state):
    deadline, down = time.monotonic() + 90, None
    while time.monotonic() < deadline:
        targets = api(sandbox_state, monitored["address"], "/api/v1/targets")["data"]["activeTargets"]
        down = {target["labels"]["job"]: target["health"] for target in targets if target["health"] != "up"}
        if not down and len(targets) == 7:
            break
        time.sleep(3)
    assert not down and {target["labels"]["job"] for target in targets} == {
        "prometheus", "alertmanager", "node", "blackbox", "gateway_healthz", "gateway_readyz", "certificate"}, down
    # The probes succeed, the certificate's expiry is known, the kit's units are reported.
    for expression, expected in [('probe_success{job="gateway_healthz"}', "1"), ('probe_success{job="gateway_readyz"}', "1"),
                            ('probe_success{job="certificate"}', "1")]:
        found = query(sandbox_state, monitored["address"], expression)
        assert [sample["value"][1] for sample in found] == [expected], (expression, found)
    expiry = query(sandbox_state, monitored["address"], "probe_ssl_earliest_cert_expiry - time()")
    assert float(expiry[0]["value"][1]) > 14 * 86400
    units = query(sandbox_state, monitored["address"], 'node_systemd_unit_state{name="openclaw-gateway.service",state="active"}')
    assert [sample["value"][1] for sample in units] == ["1"]


def test_a_scheduled_jobs_outcome_reaches_prometheus(monitored, sandbox_state):
    address = monitored["address"]
    cron = ssh(sandbox_state, address, f"cat {CRON_FILE}").stdout
    rotation = next(line.split(None, 6)[6] for line in cron.splitlines() if " logrotate --" in line)
    started = time.time()
    ssh(sandbox_state, address, rotation)  # as cron runs it, through the kit's job runner
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = {sample["metric"]["__name__"]: float(sample["value"][1]) for sample in query(
            sandbox_state, address, '{__name__=~"openclaw_kit_job_.*", job="logrotate"}')}
        if found.get("openclaw_kit_job_last_success_timestamp_seconds", 0) >= started - 1:
            break
        time.sleep(2)
    assert found["openclaw_kit_job_last_exit_code"] == 0, found
    assert found["openclaw_kit_job_last_success_timestamp_seconds"] >= started - 1, found


def test_the_exporters_do_not_answer_on_the_hosts_address(monitored, sandbox_state):
    address = monitored["address"]
    answers = ssh(sandbox_state, address, PROBE + " ".join([address, *map(str, PORTS)])).stdout.split("\n")
    refused = {int(line.split()[0]): int(line.split()[1]) for line in answers if line.strip()}
    assert refused == dict.fromkeys(PORTS, 111), f"connect_ex on {address} (111: refused): {refused}"
    # And they do on loopback (9094, the gossip port, is off everywhere).
    loopback = ssh(sandbox_state, address, PROBE + " ".join(["127.0.0.1", *map(str, PORTS)])).stdout.split("\n")
    assert {int(line.split()[0]): int(line.split()[1]) for line in loopback if line.strip()} == {
        **dict.fromkeys(PORTS, 0), 9094: 111}


def test_a_stopped_gateway_alerts_the_webhook_and_a_rerun_resolves_it(monitored, sandbox_state, kit_env):
    started = time.monotonic()
    ssh(sandbox_state, monitored["address"], "systemctl stop openclaw-gateway")
    firing = monitored["receiver"].wait_for("OpenclawGatewayDown", "firing", timeout=120)
    assert firing["labels"]["host"] == host_domain(sandbox_state["hosts"][0]["name"])
    print(f"\nmonitoring: gateway-down alert after {time.monotonic() - started:.0f}s")
    rerun = deploy_json(kit_env, inventory=monitored["inventory"])
    assert monitored["address"] in changed_hosts(rerun)["openclaw | openclaw-gateway enabled and running"]
    monitored["receiver"].wait_for("OpenclawGatewayDown", "resolved", timeout=120)
    print(f"monitoring: resolved {time.monotonic() - started:.0f}s after the stop")


def test_a_second_run_changes_nothing(monitored, sandbox_state, kit_env):
    assert changed_hosts(deploy_json(kit_env, inventory=monitored["inventory"])) == {}
    # Only the first host runs monitoring.
    other = sandbox_state["hosts"][1]["address"]
    assert ssh(sandbox_state, other, "systemctl is-active prometheus", check=False).stdout.strip() != "active"
