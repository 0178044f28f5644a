"""`./kit record-facts`: what it records, what it scrubs, and that it runs nothing but facts.
On real sandbox hosts of each distribution: tests/integration/test_distros.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from openclaw_kit.record_facts import Scrubber, platform_directory
from tests.unit.fake_host import ENV, FACTS, SETTINGS

REPO = Path(__file__).resolve().parents[2]


def test_identifying_outputs_are_scrubbed():
    scrub = Scrubber(hosts={"mini", "mini.home.example.org"}, users={"jane", "admin"}, secrets={"s3cr3t-token-value"})
    # system_profiler SPHardwareDataType and ioreg -rd1 -c IOPlatformExpertDevice, in Apple's layout
    text = "\n".join([
        "      Serial Number (system): C02ZK0XXMD6T",
        "      Hardware UUID: 4A1B2C3D-1111-2222-3333-444455556666",
        "      Provisioning UDID: 00008103-001A2C8E0E38801E",
        '      "IOPlatformSerialNumber" = "C02ZK0XXMD6T"',
        "ether a4:83:e7:12:34:56",
        "inet 94.130.12.7 netmask 0xffffff00 broadcast 10.0.0.255",
        "inet6 2a01:4f8:c0c:1234::1 prefixlen 64",
        "inet 192.168.1.20 inet6 fe80::1%lo0",
        "/Users/jane/Library/LaunchAgents/ai.openclaw.gateway.plist",
        "jane 501", "admin 502", "mini.home.example.org mini",
        "OPENCLAW_GATEWAY_TOKEN=s3cr3t-token-value",
    ])
    scrubbed = scrub(text)
    for gone in ("C02ZK0XXMD6T", "4A1B2C3D", "001A2C8E0E38801E", "a4:83:e7", "94.130.12.7", "2a01:4f8",
                 "jane", "mini", "s3cr3t"):
        assert gone not in scrubbed, (gone, scrubbed)
    # private addresses, the account names every image has and the file layout stay as they were
    for kept in ("192.168.1.20", "fe80::1", "admin 502", "/Users/user/Library/LaunchAgents/ai.openclaw.gateway.plist",
                 "Serial Number (system): SCRUBBED", "host.example.com host", "OPENCLAW_GATEWAY_TOKEN=***"):
        assert kept in scrubbed, (kept, scrubbed)


def test_the_directory_is_named_by_platform_and_cpu():
    assert platform_directory("Linux", {"name": "Debian", "major": 12, "minor": 8}, None, "x86_64") == "debian12_x86_64"
    assert platform_directory("Linux", {"name": "Ubuntu", "major": 24, "minor": 4}, None, "aarch64") == "ubuntu2404_aarch64"
    assert platform_directory("Darwin", None, "15.1.1\n", "arm64\n") == "macos15_arm64"


def record(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    data = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": FACTS, **SETTINGS, "hostname": "gw1"}
    (tmp_path / "inventory.py").write_text(f"hosts = [('@fake/gw1', {data!r})]\n")
    return subprocess.run([sys.executable, "-m", "openclaw_kit.record_facts", str(tmp_path / "inventory.py"), "@fake/gw1",
                           "--out", str(tmp_path / "out"), *extra],
                          cwd=REPO, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300)


def test_a_recording_has_every_fact_output_a_readme_row_each_and_no_name_or_secret(tmp_path):
    run = record(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "out"
    index = json.loads((out / "facts.json").read_text())
    outputs = sorted(p.name for p in out.glob("*.txt"))
    assert sorted(entry["file"] for entry in index) == outputs
    assert len(outputs) > 50, "the whole dry run's facts, not a handful"
    readme = (out / "README.md").read_text()
    assert readme.startswith("# Facts recorded from a real debian12_x86_64 host")
    assert all(f"| `{name}` |" in readme for name in outputs)
    by_command = {entry["command"]: entry for entry in index}
    assert (out / by_command["uname -s"]["file"]).read_text() == "Linux\n"
    everything = readme + "".join((out / name).read_text() for name in outputs) + json.dumps(index)
    assert ENV["OPENCLAW_GATEWAY_TOKEN"] not in everything
    assert "gw1" not in everything, "the host and domain names are scrubbed"


REFUSE = """
import sys
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.facts.server import Kernel
from openclaw_kit.record_facts import Recorder, RecordError

recorder = Recorder("@fake/gw1")
recorder.install()
inventory = Inventory(([("@fake/gw1", {"fake_delay": 0, "fake_delay_jitter": 0,
                                      "fake_responses": {"uname -s": "Linux"}})], {}))
state = State(inventory, Config())
connect_all(state)
host = inventory.get_host("@fake/gw1")
print("kernel", host.get_fact(Kernel))
try:
    host.run_shell_command("touch /etc/changed")
except RecordError as error:
    print("refused:", error)
print("ran", host.connector.executed_commands)
"""


def test_a_command_that_is_not_a_fact_never_reaches_the_host():
    run = subprocess.run([sys.executable, "-c", REFUSE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "kernel Linux" in run.stdout
    assert "refused: record-facts runs only the kit's fact commands; refused on @fake/gw1: touch /etc/changed" in run.stdout
    assert "touch" not in run.stdout.split("ran ", 1)[1]
