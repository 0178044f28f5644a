"""The hosts: their SSH key, rootfs and identity, their containers, and how to reach them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .files import _remove_tree, _tail, _write
from .images import DISTROS
from .layout import BRIDGE, GATEWAY, NETWORK, SandboxError, _host_dir, _log, _machine, _paths
from .processes import _alive, _pids, _run, _signal, _spawn, _stop

HOST_TIMEOUT = 60                   # seconds a host may take to answer SSH
STOP_TIMEOUT = 30                   # seconds a container may take to halt


def _ensure_ssh_key() -> Path:
    key = _paths()["key"]
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            key.with_suffix(".pub").unlink()
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "openclaw-kit-sandbox",
              "-f", str(key)])
    key.chmod(0o600)
    return key


def ssh_command(address: str, state: dict | None = None, user: str | None = None) -> list[str]:
    """argv prefix to run a command on a sandbox host with strict host key checking."""
    state = state or {"ssh_key": str(_paths()["key"]), "known_hosts": str(_paths()["known_hosts"])}
    return ["ssh", "-i", state["ssh_key"], "-o", f"UserKnownHostsFile={state['known_hosts']}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            f"{user or state.get('ssh_user', 'root')}@{address}"]


def _ssh(address: str, command: str, timeout: float, user: str = "root") -> subprocess.CompletedProcess:
    argv = ssh_command(address, user=user)
    # Options go before the destination; ConnectTimeout keeps a dead host from hanging us.
    argv[1:1] = ["-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR"]
    try:
        return subprocess.run([*argv, command], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 255, "", f"timed out after {timeout:.0f} s")


def _host_ready(address: str, timeout: float = 10, user: str = "root") -> tuple[bool, str]:
    """Does the host answer SSH and has it finished booting?"""
    r = _ssh(address, "systemctl is-system-running --wait", timeout, user)
    state = r.stdout.strip()
    if state in ("running", "degraded"):
        return True, state
    return False, (r.stderr.strip().splitlines() or [state or f"exit {r.returncode}"])[-1]


def _prepare_rootfs(name: str, address: str, base: Path, distro: str, root_login: bool) -> Path:
    """Mount (or copy) a fresh rootfs for the host and give it its own identity."""
    hd = _host_dir(name)
    _remove_tree(hd)                       # leftovers of an earlier incarnation
    root, upper, work = hd / "rootfs", hd / "upper", hd / "work"
    for d in (root, upper, work):
        d.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={base},upperdir={upper},workdir={work}", str(root)],
                       capture_output=True, text=True)
    if r.returncode != 0:                  # e.g. state dir on a filesystem overlay cannot use
        _run(["cp", "-a", "--reflink=auto", f"{base}/.", str(root)])
        root.chmod(0o755)                  # "/" must be traversable by the container's users

    etc = root / "etc"
    # Empty machine-id: systemd gives each boot of this host its own id.
    (etc / "machine-id").write_text("")
    dbus_id = root / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.exists() and not dbus_id.is_symlink():
        dbus_id.unlink()
        dbus_id.symlink_to("/etc/machine-id")
    (etc / "hostname").write_text(name + "\n")
    (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n"
                               "::1\t\tlocalhost ip6-localhost ip6-loopback\n")

    for old in (etc / "ssh").glob("ssh_host_*"):
        old.unlink()
    for kind in ("rsa", "ecdsa", "ed25519"):
        _run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{name}",
              "-f", str(etc / "ssh" / f"ssh_host_{kind}_key")])

    # Like a cloud image, the admin user has the key; root only when the host allows root logins
    # (the suite deploys as root too). Without it root cannot log in over SSH at all.
    _authorize(root, DISTROS[distro].admin_user)
    if root_login:
        _authorize(root, "root")

    # Sorts before systemd's 80-container-host0.network, which would give a link-local address.
    netdir = etc / "systemd" / "network"
    netdir.mkdir(parents=True, exist_ok=True)
    (netdir / "10-host0.network").write_text(
        f"[Match]\nName=host0\n\n[Network]\nAddress={address}/{NETWORK.prefixlen}\n"
        f"Gateway={GATEWAY}\n")
    _run(["systemctl", "--root", str(root), "--quiet", "enable", "systemd-networkd.service"])
    # As cloud-init does on a cloud image, reach network-online.target at boot. Else the first unit
    # that wants it (the gateway) starts systemd-networkd-wait-online right after a daemon-reload,
    # which systemd 255/257 (Ubuntu 24.04, Debian 13) can fail: "Failed to spawn executor".
    _run(["systemctl", "--root", str(root), "--quiet", "enable", "systemd-networkd-wait-online.service"])
    wants = etc / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        (wants / "network-online.target").symlink_to("/usr/lib/systemd/system/network-online.target")
    return root



def _authorize(root: Path, user: str) -> None:
    """The sandbox's SSH key for `user` in the host's rootfs."""
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    entry = next(line.split(":") for line in passwd if line.startswith(f"{user}:"))
    uid, gid, home = int(entry[2]), int(entry[3]), entry[5]
    ssh_dir = root / home.lstrip("/") / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    ssh_dir.chmod(0o700)
    auth = ssh_dir / "authorized_keys"
    auth.write_text(_paths()["key"].with_suffix(".pub").read_text())
    auth.chmod(0o600)
    for path in (ssh_dir, auth):
        os.chown(path, uid, gid)


def _nspawn_marker(name: str) -> str:
    return f"--machine={_machine(name)}"


def _tun_supported() -> bool:
    return Path("/dev/net/tun").exists()


def _start_host(name: str, root: Path) -> int:
    argv = ["systemd-nspawn", "-D", str(root), "--boot", "--register=no", "--keep-unit",
            "--console=passive", f"--network-bridge={BRIDGE}", _nspawn_marker(name)]
    if _tun_supported():
        argv.append("--bind=/dev/net/tun")    # lets wireguard-go run inside
    return _spawn(argv, _log(name))


def _known_hosts_lines(name: str, address: str) -> list[str]:
    lines = []
    for pub in sorted((_host_dir(name) / "rootfs" / "etc" / "ssh").glob("ssh_host_*_key.pub")):
        kind, key = pub.read_text().split()[:2]
        lines.append(f"{address} {kind} {key}")
    return lines


def _write_known_hosts(hosts: list[dict]) -> None:
    lines = [line for h in hosts for line in _known_hosts_lines(h["name"], h["address"])]
    _write(_paths()["known_hosts"], "\n".join(lines) + "\n" if lines else "")


def _wait_host(name: str, address: str, pid: int, user: str) -> None:
    deadline = time.monotonic() + HOST_TIMEOUT
    why = "no answer yet"
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise SandboxError(f"container {_machine(name)} exited during boot; {_tail(_log(name))}")
        ok, why = _host_ready(address, timeout=max(1.0, min(10.0, deadline - time.monotonic())), user=user)
        if ok:
            return
        time.sleep(0.5)
    raise SandboxError(f"{name} ({address}) did not answer SSH and finish booting within "
                       f"{HOST_TIMEOUT} s (last: {why}); {_tail(_log(name))}")


def _stop_host(name: str, pid: int | None) -> None:
    """Halt one container (SIGTERM to nspawn = clean shutdown) and remove its rootfs."""
    hosts = f"{_paths()['hosts']}/"
    pids = {p for p in [pid] if _alive(p, _nspawn_marker(name))}
    pids |= set(_pids(lambda a: "systemd-nspawn" in a[0] and _nspawn_marker(name) in a
                      and any(x.startswith(hosts) for x in a)))
    _stop(sorted(pids), STOP_TIMEOUT)
    _kill_orphans(_host_dir(name))
    _remove_tree(_host_dir(name))


def _kill_orphans(under: Path) -> None:
    """SIGKILL container processes whose root is below `under`.

    If nspawn itself died (SIGKILL, OOM), the container's init lives on in its
    own pid namespace; killing that init ends the whole container."""
    own_ns = os.readlink("/proc/self/ns/pid")
    victims = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "pid") == own_ns:
                continue
            for line in (entry / "mountinfo").read_text().splitlines():
                fields = line.split()
                if fields[4] == "/" and f"{under}/" in line:
                    victims.append(int(entry.name))
                    break
        except OSError:
            continue
    for pid in victims:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in victims) and time.monotonic() < deadline:
        time.sleep(0.1)
