"""The sandbox itself: real Debian 13 and Ubuntu 24.04 hosts in systemd-nspawn containers.

One `down` + `up --hosts 2 --distro debian13,ubuntu2404` for the whole module, `down` at its end (other
modules bring their own sandbox up and down, so nothing here outlives this
module and nothing left by them is trusted).
Needs root and the Debian packages named by sandbox.available(); skipped
without them, except on CI (CI=true), where a missing sandbox is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sandbox

REPO = Path(__file__).resolve().parents[2]
NET = sandbox.GATEWAY.rsplit(".", 1)[0]
# A mix, as a user may ask for: the default distro and the other vendor.
DISTROS = ("--distro", "debian13,ubuntu2404")

_ok, _why = sandbox.available()
if not _ok:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs the sandbox: {_why}", pytrace=False)
    pytest.skip(_why, allow_module_level=True)


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m sandbox ...` as a user would."""
    return subprocess.run([sys.executable, "-m", "sandbox", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def ssh(state: dict, host: dict, command: str, *, input: str | None = None,
        known_hosts: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    argv = ["ssh", "-i", state["ssh_key"],
            "-o", f"UserKnownHostsFile={known_hosts or state['known_hosts']}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", f"{state['ssh_user']}@{host['address']}", command]
    return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)


def container_python(state: dict, host: dict, code: str, **kw) -> subprocess.CompletedProcess:
    return ssh(state, host, "python3 -c " + shlex.quote(code), **kw)


@pytest.fixture(scope="module")
def state():
    # Start from nothing: hosts left up by other modules may carry a deployed firewall,
    # and this module tests the sandbox itself (and times a full up).
    assert cli("down").returncode == 0
    started = time.monotonic()
    r = cli("up", "--hosts", "2", *DISTROS)
    elapsed = time.monotonic() - started
    try:
        assert r.returncode == 0, f"sandbox up failed:\n{r.stdout}{r.stderr}"
        print(f"\nsandbox up --hosts 2 took {elapsed:.1f} s")
        yield sandbox.load_state()
    finally:
        cli("down")                                   # idempotent; also after a failed test


def by_name(state: dict) -> dict[str, dict]:
    return {h["name"]: h for h in state["hosts"]}


def test_state_describes_two_hosts_and_services(state):
    assert [(h["name"], h["address"]) for h in state["hosts"]] == [
        ("sbx1", f"{NET}.11"), ("sbx2", f"{NET}.12")]
    assert set(state["services"]) == {"tinyproxy", "pebble", "challtestsrv"}
    assert state["proxy"] == f"http://{NET}.1:8888"
    assert state["acme_directory"] == f"https://{NET}.1:14000/dir"
    for key in ("ssh_key", "known_hosts", "acme_ca_file"):
        assert Path(state[key]).is_absolute() and Path(state[key]).is_file(), key
    assert Path(state["ssh_key"]).stat().st_mode & 0o077 == 0


def test_hosts_answer_ssh_with_strict_host_key_checking(state, tmp_path):
    for host in state["hosts"]:
        r = ssh(state, host, "hostname; systemctl is-system-running --wait; systemctl list-units --failed --plain --no-legend")
        assert r.returncode == 0, r.stderr
        name, running, *failed = r.stdout.split("\n", 2)
        assert name == host["name"]
        assert running == "running", f"failed units: {failed}"   # not degraded: a deployed host must not be either

    # The check really is strict: with an unrelated known_hosts entry, ssh refuses.
    other = tmp_path / "known_hosts"
    sbx1, sbx2 = state["hosts"]
    sbx2_keys = [line for line in Path(state["known_hosts"]).read_text().splitlines()
                 if line.startswith(sbx2["address"] + " ")]
    assert sbx2_keys
    other.write_text("".join(line.replace(sbx2["address"], sbx1["address"], 1) + "\n"
                             for line in sbx2_keys))
    r = ssh(state, sbx1, "true", known_hosts=str(other))
    assert r.returncode == 255
    assert "host key" in r.stderr.lower() or "identification has changed" in r.stderr.lower()


def test_each_host_runs_its_distro_with_its_cloud_admin_user(state):
    # As on a cloud image: the deploy can run as this user with _sudo (inventories/sandbox_admin.py).
    assert [(h["distro"], h["os"], h["admin_user"]) for h in state["hosts"]] == [
        ("debian13", "Debian 13", "admin"), ("ubuntu2404", "Ubuntu 24.04", "ubuntu")]
    for host, version in zip(state["hosts"], ("ID=debian VERSION_ID=13", "ID=ubuntu VERSION_ID=24.04"), strict=True):
        r = ssh({**state, "ssh_user": host["admin_user"]}, host,
                ". /etc/os-release; echo ID=$ID VERSION_ID=$VERSION_ID; id -un; sudo -n id -u")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == [version, host["admin_user"], "0"]


def test_hosts_have_their_own_identity(state):
    ids = {}
    for host in state["hosts"]:
        r = ssh(state, host, "cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub")
        assert r.returncode == 0, r.stderr
        machine_id, *key = r.stdout.split("\n", 1)
        assert len(machine_id.strip()) == 32
        ids[host["name"]] = (machine_id.strip(), key[0].split()[1])
    assert ids["sbx1"][0] != ids["sbx2"][0]
    assert ids["sbx1"][1] != ids["sbx2"][1]


def test_hosts_reach_each_other_over_the_bridge(state):
    hosts = by_name(state)
    r = ssh(state, hosts["sbx1"],
            f"exec 3<>/dev/tcp/{hosts['sbx2']['address']}/22 && head -c 8 <&3", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("SSH-2.0")


def bridge_mac() -> str:
    return json.loads(subprocess.run(["ip", "-j", "link", "show", sandbox.BRIDGE], capture_output=True, text=True,
                                     check=True).stdout)[0]["address"]


def test_the_gateway_keeps_its_mac_when_a_port_joins_the_bridge(state):
    # A port with a lower MAC (like a test's veth) would otherwise become the bridge's, under the hosts' ARP caches.
    assert bridge_mac() == sandbox.BRIDGE_MAC
    outer, inner = f"vt-{sandbox.BRIDGE}", f"vu-{sandbox.BRIDGE}"
    subprocess.run(["ip", "link", "add", outer, "address", "00:00:00:00:00:01", "type", "veth", "peer", "name", inner],
                   check=True)
    try:
        subprocess.run(["ip", "link", "set", outer, "master", sandbox.BRIDGE, "up"], check=True)
        assert bridge_mac() == sandbox.BRIDGE_MAC
    finally:
        subprocess.run(["ip", "link", "del", outer], capture_output=True)
    assert bridge_mac() == sandbox.BRIDGE_MAC


def test_second_up_keeps_running_hosts(state):
    before = sandbox.load_state()
    known_before = Path(before["known_hosts"]).read_text()
    uptime_before = ssh(state, before["hosts"][0], "cut -d' ' -f22 /proc/1/stat; "
                        "systemctl show -P ActiveEnterTimestampMonotonic multi-user.target")
    r = cli("up", "--hosts", "2", *DISTROS)
    assert r.returncode == 0, r.stderr
    after = sandbox.load_state()
    assert [h["pid"] for h in after["hosts"]] == [h["pid"] for h in before["hosts"]]
    assert after["services"] == before["services"]
    assert Path(after["known_hosts"]).read_text() == known_before
    uptime_after = ssh(state, after["hosts"][0], "cut -d' ' -f22 /proc/1/stat; "
                       "systemctl show -P ActiveEnterTimestampMonotonic multi-user.target")
    assert uptime_before.stdout == uptime_after.stdout != ""


def test_status_json_reports_healthy(state):
    r = cli("status", "--json", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["healthy"] is True
    assert [(h["name"], h["alive"], h["ssh"]) for h in report["hosts"]] == [
        ("sbx1", True, True), ("sbx2", True, True)]
    assert all(s["alive"] and s["listening"] for s in report["services"].values())


PROXY_FETCH = """
import glob, urllib.request
proxy = {"http": %r, "https": %r}
opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxy))
for path in glob.glob("/etc/apt/sources.list.d/*.sources") + glob.glob("/etc/apt/sources.list"):
    stanzas = [dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
               for block in open(path).read().split("\\n\\n")]
    for stanza in stanzas:
        for suite in stanza["Suites"].split():
            with opener.open(stanza["URIs"].rstrip("/") + "/dists/" + suite + "/Release", timeout=30) as r:
                body = r.read(4096).decode()
            # Debian names the suite in Codename (trixie-updates), Ubuntu in Suite (noble-updates).
            names = {line.split()[1] for line in body.splitlines() if line.startswith(("Suite:", "Codename:"))}
            print(r.status, suite, suite in names, stanza["Components"])
"""


def test_apt_sources_are_a_cloud_images_and_answer_through_the_proxy(state):
    # main, updates and security of each distro's own archives, as its cloud images have them;
    # the hosts reach them only through the sandbox's proxy.
    expected = {"debian13": ("trixie", "main"), "ubuntu2404": ("noble", "main restricted universe multiverse")}
    for host in state["hosts"]:
        codename, components = expected[host["distro"]]
        r = container_python(state, host, PROXY_FETCH % (state["proxy"], state["proxy"]), timeout=90)
        assert r.returncode == 0, r.stderr
        assert sorted(r.stdout.splitlines()) == sorted(
            f"200 {codename}{suffix} True {components}" for suffix in ("", "-updates", "-security"))


CONNECT_PROBE = """
import socket
s = socket.create_connection(("%s", 8888), timeout=10)
s.sendall(b"CONNECT %s:22 HTTP/1.1\\r\\nHost: %s:22\\r\\n\\r\\n")
print(s.recv(200).decode(errors="replace").splitlines()[0])
"""


def test_proxy_tunnels_only_to_port_443(state):
    sbx1, sbx2 = state["hosts"]
    r = container_python(state, sbx1, CONNECT_PROBE % (sandbox.GATEWAY, sbx2["address"], sbx2["address"]))
    assert r.returncode == 0, r.stderr
    assert " 403 " in r.stdout, r.stdout


PEBBLE_FETCH = """
import json, ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[1]) if len(sys.argv) > 1 else ssl.create_default_context()
try:
    d = json.load(urllib.request.urlopen(%r, context=ctx, timeout=15))
except urllib.error.URLError as e:
    print("error", e.reason)
else:
    print(" ".join(sorted(d)))
"""


def test_pebble_directory_answers_over_https_with_the_ca(state):
    host = state["hosts"][1]
    ca = Path(state["acme_ca_file"]).read_text()
    r = ssh(state, host, "cat > /tmp/pebble-ca.pem", input=ca)
    assert r.returncode == 0, r.stderr
    code = shlex.quote(PEBBLE_FETCH % state["acme_directory"])
    r = ssh(state, host, f"python3 -c {code} /tmp/pebble-ca.pem")
    assert r.returncode == 0, r.stderr
    assert {"newAccount", "newNonce", "newOrder"} <= set(r.stdout.split())
    # Without the CA the certificate is not trusted: the CA file is what makes it work.
    r = ssh(state, host, f"python3 -c {code}")
    assert r.stdout.startswith("error") and "CERTIFICATE_VERIFY_FAILED" in r.stdout, r.stdout


def _our_processes(sd: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            # sd + "/": the state directory of slot 0 is a prefix of other slots' (-1, -2, ...).
            if (argv[0] in ("systemd-nspawn", "tinyproxy", "pebble") and sd + "/" in " ".join(argv)) \
                    or (argv[0] == "pebble-challtestsrv" and f"{NET}.1:8055" in argv):
                found.append(" ".join(argv))
    return found


def test_down_removes_everything(state):
    sd = str(sandbox.state_dir())
    assert _our_processes(sd)                        # the probe below would see them
    started = time.monotonic()
    r = cli("down", timeout=120)
    print(f"\nsandbox down took {time.monotonic() - started:.1f} s")
    assert r.returncode == 0, r.stderr

    assert _our_processes(sd) == []
    assert subprocess.run(["ip", "link", "show", sandbox.BRIDGE], capture_output=True).returncode != 0
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "vb-" + sandbox.MACHINE_PREFIX not in links
    mounts = Path("/proc/self/mountinfo").read_text()
    assert sd + "/" not in mounts
    assert not (Path(sd) / "state.json").exists()
    assert not (Path(sd) / "hosts").exists()
    # kept: the SSH key pair and the base image, so the next up is fast
    assert Path(state["ssh_key"]).exists()
    for distro in ("debian13", "ubuntu2404"):
        assert (sandbox.cache_dir() / sandbox.base_image_name(distro) / "etc" / "os-release").exists()

    with pytest.raises(sandbox.SandboxError, match="not up"):
        sandbox.load_state()
    assert cli("status").returncode == 1
    assert cli("down").returncode == 0                # nothing up: a no-op


def _assert_nothing_left(sd: str) -> None:
    assert _our_processes(sd) == []
    assert subprocess.run(["ip", "link", "show", sandbox.BRIDGE], capture_output=True).returncode != 0
    assert sd + "/" not in Path("/proc/self/mountinfo").read_text()
    assert not (Path(sd) / "state.json").exists()


def test_failed_up_on_a_bridge_conflict_cleans_up(state):
    sd = str(sandbox.state_dir())
    subprocess.run(["ip", "link", "add", "ockit-conflict", "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{NET}.5/24", "dev", "ockit-conflict"], check=True)
        r = cli("up", "--hosts", "1")
    finally:
        subprocess.run(["ip", "link", "del", "ockit-conflict"], check=True)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "bridge conflict" in r.stderr and "ockit-conflict" in r.stderr
    _assert_nothing_left(sd)


def test_failed_up_on_a_host_that_never_answers_cleans_up(state, monkeypatch):
    sd = str(sandbox.state_dir())
    monkeypatch.setattr(sandbox.hosts, "HOST_TIMEOUT", 0.5)   # no host boots that fast
    with pytest.raises(sandbox.SandboxError, match=rf"sbx1 \({re.escape(NET)}.11\) did not answer SSH.*last lines of"):
        sandbox.up(1)
    _assert_nothing_left(sd)
