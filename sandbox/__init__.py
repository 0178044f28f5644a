"""Local sandbox of real Debian and Ubuntu hosts for testing the kit.

`up(n, distros)` boots n systemd-booted containers (systemd-nspawn) of Debian 12,
Debian 13 or Ubuntu 24.04 (DISTROS; a mix is fine) on the bridge ockit{slot},
reachable over SSH from this machine, plus three helper
services on the bridge address: tinyproxy (a forward proxy, for the kit's own
`proxy` setting), pebble (a test ACME server) and pebble-challtestsrv (its DNS).
`down()` removes all of it again except the base image cache and the SSH key
pair. Everything is described by state.json in the state directory, which
other code reads through `load_state()`.

Requires root and the Debian packages systemd-container, debootstrap,
tinyproxy, pebble, openssh-client and iproute2 (Ubuntu images also the
ubuntu-keyring package, which the sandbox fetches from Debian 13 if missing). Works without systemd as PID 1.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SandboxError", "available", "up", "down", "status", "load_state",
    "ssh_command", "state_dir", "cache_dir", "host_domain", "DISTROS", "DEFAULT_DISTRO",
]

# A slot number lets separate sandboxes run side by side (each its own bridge, subnet, state).
SLOT = int(os.environ.get("OPENCLAW_SANDBOX_SLOT") or 0)
BRIDGE = f"ockit{SLOT}"
BRIDGE_MAC = f"02:6f:63:6b:00:{SLOT:02x}"  # locally administered, one per slot
NETWORK = ipaddress.ip_network(f"10.231.{SLOT}.0/24")
GATEWAY = str(NETWORK.network_address + 1)
MACHINE_PREFIX = f"ockit{SLOT}-"
MAX_HOSTS = 50                      # addresses .11 ... .60
# Sandbox hosts are served on <name>.openclaw.test (a reserved TLD: never resolves outside).
DOMAIN = "openclaw.test"
HOST_TIMEOUT = 60                   # seconds a host may take to answer SSH
STOP_TIMEOUT = 30                   # seconds a container may take to halt
SERVICE_TIMEOUT = 15                # seconds a service may take to listen
PORTS = {"tinyproxy": 8888, "pebble": 14000, "pebble_mgmt": 15000,
         "challtestsrv_dns": 8053, "challtestsrv": 8055}
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3",
    "iproute2", "ca-certificates", "sudo",
]


@dataclass(frozen=True)
class Distro:
    """How to build a base image of a distribution, and what its cloud image has."""

    label: str          # "Debian 13"
    suite: str          # the codename debootstrap builds
    vendor: str         # "debian" or "ubuntu": which archive and keyring
    admin_user: str     # the non-root user its cloud images come with (passwordless sudo)


DISTROS = {
    "debian12": Distro("Debian 12", "bookworm", "debian", "admin"),
    "debian13": Distro("Debian 13", "trixie", "debian", "admin"),
    "ubuntu2404": Distro("Ubuntu 24.04", "noble", "ubuntu", "ubuntu"),
}
DEFAULT_DISTRO = "debian13"
# Ubuntu's own archives (what its images use; mirrors via OPENCLAW_SANDBOX_UBUNTU_MIRROR).
UBUNTU_ARCHIVE = "http://archive.ubuntu.com/ubuntu"
UBUNTU_SECURITY = "http://security.ubuntu.com/ubuntu"
# Debian 12's own Debian has no ubuntu-keyring any more; Debian 13 ships it (from this suite).
UBUNTU_KEYRING_SUITE = "trixie"
UBUNTU_KEYRING = "/usr/share/keyrings/ubuntu-archive-keyring.gpg"
# The image version: a change to the package list or to _finish_image builds new images.
IMAGE_VERSION = hashlib.sha256((",".join(PACKAGES) + ",cloud-sources-1").encode()).hexdigest()[:8]


def base_image_name(distro: str) -> str:
    return f"{DISTROS[distro].suite}-base-{IMAGE_VERSION}"
# binary -> Debian package that provides it
REQUIRED_BINARIES = {
    "systemd-nspawn": "systemd-container",
    "systemctl": "systemd",
    "debootstrap": "debootstrap",
    "tinyproxy": "tinyproxy",
    "pebble": "pebble",
    "pebble-challtestsrv": "pebble",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
    "mount": "mount",
}


class SandboxError(Exception):
    """A sandbox operation failed; the message is one line meant for humans."""


# --------------------------------------------------------------------------
# paths and names

def state_dir() -> Path:
    default = "/var/lib/openclaw-kit-sandbox" + (f"-{SLOT}" if SLOT else "")
    return Path(os.environ.get("OPENCLAW_SANDBOX_DIR") or default).absolute()


def cache_dir() -> Path:
    return Path(os.environ.get("OPENCLAW_SANDBOX_CACHE") or "/var/cache/openclaw-kit-sandbox").absolute()


def _host_name(i: int) -> str:
    return f"sbx{i}"


def _host_address(i: int) -> str:
    return str(NETWORK.network_address + 10 + i)


def host_domain(name: str) -> str:
    """The name a sandbox host is served on; the sandbox's DNS (challtestsrv) resolves it."""
    return f"{name}.{DOMAIN}"


def _register_dns(hosts: list[dict]) -> None:
    """Per-host A records in challtestsrv, which pebble asks when it validates a challenge."""
    import urllib.request

    for h in hosts:
        body = json.dumps({"host": host_domain(h["name"]) + ".", "addresses": [h["address"]]}).encode()
        request = urllib.request.Request(f"http://{GATEWAY}:{PORTS['challtestsrv']}/add-a", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            if answer.status != 200:
                raise SandboxError(f"challtestsrv refused the A record for {h['name']}: HTTP {answer.status}")


def _host_index(name: str) -> int:
    return int(name.removeprefix("sbx"))


def _machine(name: str) -> str:
    return MACHINE_PREFIX + name


def _paths(sd: Path | None = None) -> dict[str, Path]:
    sd = sd or state_dir()
    return {
        "state": sd / "state.json",
        "lock": sd / ".lock",
        "key": sd / "id_ed25519",
        "known_hosts": sd / "known_hosts",
        "hosts": sd / "hosts",
        "logs": sd / "logs",
        "tinyproxy_conf": sd / "tinyproxy.conf",
        "pebble_conf": sd / "pebble-config.json",
        "pebble_ca": sd / "pebble-ca.pem",
        "pebble_cert": sd / "pebble-cert.pem",
        "pebble_key": sd / "pebble-key.pem",
    }


def _host_dir(name: str, sd: Path | None = None) -> Path:
    return _paths(sd)["hosts"] / name


def _log(name: str) -> Path:
    return _paths()["logs"] / f"{name}.log"


# --------------------------------------------------------------------------
# small helpers

def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a command, raising SandboxError with its stderr on failure."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    try:
        return subprocess.run(args, check=True, **kw)
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or e.stdout or "").strip().splitlines()
        raise SandboxError(f"{' '.join(args)} failed (exit {e.returncode})"
                           + (f": {detail[-1]}" if detail else "")) from None
    except FileNotFoundError:
        raise SandboxError(f"{args[0]} not found") from None


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write atomically: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    last = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return f"last lines of {path}: " + (" | ".join(last) if last else "(empty)")


@contextlib.contextmanager
def _locked(path: Path):
    """Serialise up/down (other test modules may call them too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# Popen objects of the daemons we started, kept so they are reaped (a zombie
# would otherwise look alive) and never garbage-collected while running.
_CHILDREN: dict[int, subprocess.Popen] = {}


def _spawn(args: list[str], log: Path, env: dict | None = None) -> int:
    """Start a long-running process detached from our session; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {})})
    _CHILDREN[proc.pid] = proc
    return proc.pid


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _alive(pid: int | None, marker: str | None = None) -> bool:
    """True if pid runs and (when given) its command line contains marker.

    The marker guards against pid reuse, e.g. after the machine rebooted."""
    if not pid:
        return False
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    return marker is None or any(marker in a for a in _cmdline(pid))


def _pids(match) -> list[int]:
    """Pids of all processes whose argv satisfies match(argv)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            argv = _cmdline(int(entry.name))
            if argv and match(argv):
                out.append(int(entry.name))
    return out


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _stop(pids: list[int], timeout: float) -> None:
    """SIGTERM, wait up to timeout, then SIGKILL what is left."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def _port_open(port: int, host: str = GATEWAY) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


# --------------------------------------------------------------------------
# mounts

def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below path in our mount namespace, deepest first."""
    prefix = str(path).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].encode().decode("unicode_escape")
        if mnt == str(path) or mnt.startswith(prefix):
            found.append(mnt)
    return sorted(set(found), key=len, reverse=True)


def _unmount_all(path: Path) -> None:
    for mnt in _mounts_under(path):
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
    left = _mounts_under(path)
    if left:
        raise SandboxError(f"could not unmount {left[0]}")


def _remove_tree(path: Path) -> None:
    """rm -rf that never descends into a mount (e.g. a leftover /proc)."""
    if path.exists() or path.is_symlink():
        _unmount_all(path)
        shutil.rmtree(path)


# --------------------------------------------------------------------------
# availability and the base image

def available() -> tuple[bool, str]:
    """(True, "") if this machine can run the sandbox, else (False, why)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (containers, bridge and mounts need it)")
    missing: dict[str, list[str]] = {}
    for binary, package in REQUIRED_BINARIES.items():
        if not shutil.which(binary):
            missing.setdefault(package, []).append(binary)
    if missing:
        names = ", ".join(b for bins in missing.values() for b in bins)
        problems.append(f"missing {names}: apt-get install {' '.join(missing)}")
    if not Path("/proc/self/mountinfo").exists():
        problems.append("/proc is not mounted")
    if problems:
        return False, "sandbox unavailable: " + "; ".join(problems)
    return True, ""


def _apt_uris() -> list[str]:
    """The URI of every `deb` entry in this machine's apt sources, in apt's order."""
    uris: list[str] = []
    one_line = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in one_line:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                words = line.split("#", 1)[0].split()
                if not words or words[0] != "deb":
                    continue
                words = words[1:]
                if words and words[0].startswith("["):        # [arch=... signed-by=...]
                    while words and not words[0].endswith("]"):
                        words = words[1:]
                    words = words[1:]
                if len(words) >= 2:                    # URI suite [components]
                    uris.append(words[0])
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        with contextlib.suppress(OSError):
            for stanza in path.read_text().split("\n\n"):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in fields.get("types", "").split():
                    continue
                uris.extend(fields.get("uris", "").split())
    return uris


def debian_mirror() -> str:
    """The main Debian archive this machine's apt already uses."""
    override = os.environ.get("OPENCLAW_SANDBOX_MIRROR")
    if override:
        return override
    for uri in _apt_uris():
        if uri.rstrip("/").endswith("/debian"):          # not debian-security, not third party
            return uri
    raise SandboxError("no Debian archive (a URI ending in /debian) in /etc/apt/sources.list"
                       " or /etc/apt/sources.list.d; set OPENCLAW_SANDBOX_MIRROR")


def debian_security_mirror() -> str:
    """The Debian security archive this machine's apt uses, else the one beside its main archive."""
    for uri in _apt_uris():
        if uri.rstrip("/").endswith("/debian-security"):
            return uri
    return debian_mirror().rstrip("/") + "-security"


def _archives(distro: Distro) -> tuple[str, str]:
    """(main archive, security archive) the image is built from and its apt sources name."""
    if distro.vendor == "ubuntu":
        return os.environ.get("OPENCLAW_SANDBOX_UBUNTU_MIRROR") or UBUNTU_ARCHIVE, UBUNTU_SECURITY
    return debian_mirror(), debian_security_mirror()


def apt_sources(distro: Distro, archive: str, security: str) -> tuple[str, str]:
    """(file name, deb822 text) of the apt sources a cloud image of `distro` has: main, updates, security."""
    if distro.vendor == "ubuntu":
        # universe: fail2ban and certbot live there; Ubuntu's cloud images enable all four components.
        components, keyring = "main restricted universe multiverse", UBUNTU_KEYRING
    else:
        components, keyring = "main", "/usr/share/keyrings/debian-archive-keyring.gpg"
    text = (f"Types: deb\nURIs: {archive}\nSuites: {distro.suite} {distro.suite}-updates\n"
            f"Components: {components}\nSigned-By: {keyring}\n\n"
            f"Types: deb\nURIs: {security}\nSuites: {distro.suite}-security\n"
            f"Components: {components}\nSigned-By: {keyring}\n")
    return f"{distro.vendor}.sources", text


def _ubuntu_keyring(cache: Path) -> str:
    """Ubuntu's archive keyring: the installed ubuntu-keyring, else that package from Debian 13,
    downloaded by apt (so checked against Debian's keys) and unpacked into the cache."""
    if Path(UBUNTU_KEYRING).exists():
        return UBUNTU_KEYRING
    keyring = cache / "ubuntu-keyring" / UBUNTU_KEYRING.lstrip("/")
    if keyring.exists():
        return str(keyring)
    work = Path(tempfile.mkdtemp(dir=cache, prefix=".ubuntu-keyring.tmp-"))
    try:
        (work / "sources.list").write_text(f"deb {debian_mirror()} {UBUNTU_KEYRING_SUITE} main\n")
        for d in ("lists/partial", "cache/archives/partial"):
            (work / d).mkdir(parents=True)
        apt = ["apt-get", "-q", "-o", f"Dir::Etc::SourceList={work / 'sources.list'}",
               "-o", "Dir::Etc::SourceParts=/nonexistent", "-o", f"Dir::State::Lists={work / 'lists'}",
               "-o", f"Dir::Cache={work / 'cache'}", "-o", "Debug::NoLocking=1",
               "-o", "APT::Sandbox::User=root"]
        _run([*apt, "update"])
        _run([*apt, "download", "ubuntu-keyring"], cwd=work)
        deb = next(work.glob("ubuntu-keyring_*.deb"))
        _run(["dpkg-deb", "-x", str(deb), str(work / "unpacked")])
        _remove_tree(cache / "ubuntu-keyring")
        os.rename(work / "unpacked", cache / "ubuntu-keyring")
    finally:
        _remove_tree(work)
    return str(keyring)


def _base_image(distro_name: str = DEFAULT_DISTRO) -> Path:
    """The cached debootstrap of a distro, built once (a minute or two) from its own archive."""
    distro = DISTROS[distro_name]
    image = base_image_name(distro_name)
    cache = cache_dir()
    base = cache / image
    if (base / "etc" / "os-release").exists():
        base.chmod(0o755)                                 # caches made by older versions were 0700
        return base
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):
        if (base / "etc" / "os-release").exists():       # built meanwhile by someone else
            return base
        for stale in cache.glob(f".{image}.tmp-*"):       # an interrupted earlier build
            _remove_tree(stale)
        archive, security = _archives(distro)
        argv = ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES)]
        script = []
        if distro.vendor == "ubuntu":
            argv.append("--keyring=" + _ubuntu_keyring(cache))
            # An older debootstrap lacks the newest codenames; every Ubuntu release uses gutsy's script.
            if not Path(f"/usr/share/debootstrap/scripts/{distro.suite}").exists():
                script = ["/usr/share/debootstrap/scripts/gutsy"]
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{image}.tmp-"))
        log = cache / f"debootstrap-{distro.suite}.log"
        try:
            with open(log, "wb") as out:
                rc = subprocess.run([*argv, distro.suite, str(tmp), archive, *script],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT).returncode
            if rc != 0:
                raise SandboxError(f"debootstrap of {distro.suite} from {archive} failed (exit {rc}); {_tail(log)}")
            _unmount_all(tmp)                             # debootstrap may leave /proc etc.
            _finish_image(tmp, distro, archive, security)
            tmp.chmod(0o755)                              # mkdtemp made it 0700; "/" must be 0755
            os.rename(tmp, base)                          # atomic: never a half cache
        except BaseException:
            _remove_tree(tmp)
            raise
    return base


def _finish_image(root: Path, distro: Distro, archive: str, security: str) -> None:
    """What a cloud image of the distro has beyond debootstrap: its apt sources and admin user."""
    # Per-host identity is created when a host is made; keep none in the base.
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    apt = root / "etc" / "apt"
    with contextlib.suppress(FileNotFoundError):
        (apt / "sources.list").unlink()                   # debootstrap's one line: main only
    name, text = apt_sources(distro, archive, security)
    (apt / "sources.list.d").mkdir(exist_ok=True)
    (apt / "sources.list.d" / name).write_text(text)
    _add_admin_user(root, distro.admin_user)


# --------------------------------------------------------------------------
# keys and certificates

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


# --------------------------------------------------------------------------
# services on the bridge

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


# --------------------------------------------------------------------------
# the bridge

def _links() -> list[dict]:
    return json.loads(_run(["ip", "-j", "addr", "show"]).stdout or "[]")


def _ensure_bridge() -> bool:
    """Create the bridge with the gateway address; return True if this call made it."""
    links = _links()
    for link in links:
        if link["ifname"] == BRIDGE:
            continue
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet" and ipaddress.ip_address(addr["local"]) in NETWORK:
                raise SandboxError(f"bridge conflict: {addr['local']} on {link['ifname']} is "
                                   f"already in {NETWORK}; remove it or stop what made it")
    existing = next((link for link in links if link["ifname"] == BRIDGE), None)
    made = False
    if existing is None:
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        made = True
    elif _link_kind(BRIDGE) != "bridge":
        raise SandboxError(f"bridge conflict: {BRIDGE} exists but is not a bridge")
    try:
        addrs = [] if made else [a.get("local") for a in existing.get("addr_info", [])]
        if GATEWAY not in addrs:
            _run(["ip", "addr", "add", f"{GATEWAY}/{NETWORK.prefixlen}", "dev", BRIDGE])
        # A bridge takes the lowest MAC of its ports unless given one: a port coming or going (a host,
        # a test's veth) would change the gateway's MAC under the hosts' ARP caches, and connections from
        # here stall until they expire (an SSH from the controller timed out that way in CI).
        _run(["ip", "link", "set", BRIDGE, "address", BRIDGE_MAC])
        _run(["ip", "link", "set", BRIDGE, "up"])
    except BaseException:
        if made:
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        raise
    return made


def _link_kind(name: str) -> str:
    info = json.loads(_run(["ip", "-j", "-d", "link", "show", name]).stdout or "[{}]")
    return info[0].get("linkinfo", {}).get("info_kind", "")


# --------------------------------------------------------------------------
# hosts

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


def _add_admin_user(root: Path, user: str) -> None:
    """The cloud image's admin user, with passwordless sudo as cloud-init gives it."""
    _run(["useradd", "--root", str(root), "--create-home", "--shell", "/bin/bash", "--groups", "sudo", user])
    sudoers = root / "etc" / "sudoers.d" / "90-cloud-init-users"
    sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)


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


# --------------------------------------------------------------------------
# state

def load_state() -> dict:
    """The running sandbox as described in state.json."""
    try:
        return json.loads(_paths()["state"].read_text())
    except FileNotFoundError:
        raise SandboxError("sandbox is not up: run `python -m sandbox up`") from None
    except (OSError, ValueError) as e:
        raise SandboxError(f"sandbox state {_paths()['state']} is unreadable ({e}): "
                           "run `python -m sandbox down` then `up`") from None


def _read_state() -> dict:
    with contextlib.suppress(SandboxError):
        return load_state()
    return {}


def _proxy_ca_bundle() -> str | None:
    """The local CAs this machine trusts beyond the distro's (a TLS-inspecting egress proxy's).

    The hosts reach the package registries through tinyproxy and so through whatever this machine
    goes through; they need the same extra trust, which the kit's proxy_ca_file setting gives them.
    """
    local = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
    if not local:
        return None
    bundle = _paths()["state"].parent / "proxy-ca.pem"
    _write(bundle, "".join(path.read_text() for path in local), 0o644)
    return str(bundle)


def _save_state(hosts: list[dict], services: dict[str, int]) -> dict:
    p = _paths()
    state = {
        "bridge": BRIDGE,
        "network": str(NETWORK),
        "gateway": GATEWAY,
        "ssh_user": "root",
        "ssh_key": str(p["key"]),
        "known_hosts": str(p["known_hosts"]),
        "proxy": f"http://{GATEWAY}:{PORTS['tinyproxy']}",
        "acme_directory": f"https://{GATEWAY}:{PORTS['pebble']}/dir",
        "acme_ca_file": str(p["pebble_ca"]),
        "acme_roots_url": f"https://{GATEWAY}:{PORTS['pebble_mgmt']}/roots/0",
        "challtestsrv_management": f"http://{GATEWAY}:{PORTS['challtestsrv']}",
        "proxy_ca_file": _proxy_ca_bundle(),
        "hosts": sorted(hosts, key=lambda h: _host_index(h["name"])),
        "services": services,
    }
    _write(p["state"], json.dumps(state, indent=2) + "\n", 0o644)
    return state


# --------------------------------------------------------------------------
# public operations

def host_specs(hosts: int, distros: list[str] | str | None = None,
               root_login: list[bool] | bool = True) -> list[dict]:
    """What each of `hosts` hosts is: its distro (one for all, or one per host) and whether root
    may log in over SSH (else, as on a cloud image, only its admin user may)."""
    if not 1 <= hosts <= MAX_HOSTS:
        raise SandboxError(f"--hosts must be between 1 and {MAX_HOSTS}, not {hosts}")
    names = [distros] if isinstance(distros, str) else list(distros or [DEFAULT_DISTRO])
    logins = [root_login] if isinstance(root_login, bool) else list(root_login)
    for what, values in (("--distro", names), ("root_login", logins)):
        if len(values) not in (1, hosts):
            raise SandboxError(f"{what} gives {len(values)} values for {hosts} hosts: give one for all, "
                               "or one per host")
    for name in names:
        if name not in DISTROS:
            raise SandboxError(f"--distro {name!r}: unknown distro; choose from {', '.join(DISTROS)}")
    names, logins = names * (hosts // len(names)), logins * (hosts // len(logins))
    return [{"distro": d, "root_login": r} for d, r in zip(names, logins, strict=False)]


def up(hosts: int = 2, distros: list[str] | str | None = None, root_login: list[bool] | bool = True) -> dict:
    """Bring the sandbox to exactly `hosts` running hosts plus the services.

    Each host runs DEFAULT_DISTRO unless `distros` says otherwise (one for all hosts, or one per
    host); `root_login=False` makes hosts reachable only as their distro's admin user, like a
    cloud image. Hosts that already run as asked and answer are left alone (no reboot); missing
    or different ones are (re)created; hosts numbered above `hosts` are stopped and removed, so
    the state always matches the request. On failure everything this call made is removed again
    and SandboxError says why."""
    specs = host_specs(hosts, distros, root_login)
    ok, why = available()
    if not ok:
        raise SandboxError(why)
    with _locked(_paths()["lock"]):
        return _up_locked(specs)


def _up_locked(specs: list[dict]) -> dict:
    count = len(specs)
    prior = _read_state()
    fresh = not prior
    made_hosts: list[str] = []
    made_services: list[int] = []
    made_bridge = False
    host_list = [h for h in prior.get("hosts", []) if _host_index(h["name"]) <= count]
    services = dict(prior.get("services", {}))
    if fresh:
        _teardown()                        # leftovers of a sandbox whose state.json was lost
    try:
        # Extras first: `up --hosts 1` after 2 stops sbx2 so state matches the request.
        for h in prior.get("hosts", []):
            if _host_index(h["name"]) > count:
                _stop_host(h["name"], h.get("pid"))
        if len(host_list) != len(prior.get("hosts", [])):
            _save_state(host_list, services)

        _ensure_ssh_key()
        bases = {spec["distro"]: _base_image(spec["distro"]) for spec in specs}
        made_bridge = _ensure_bridge()

        _render_service_configs()
        for name, spec in _service_specs().items():
            if not _alive(services.get(name), spec["marker"]):
                # a stray copy (e.g. state.json lost) would hold the port
                _stop(_service_pids(spec), 5)
                services[name] = _start_service(name, spec)
                made_services.append(services[name])
                _save_state(host_list, services)

        # Keep hosts that run and answer; recreate the rest.
        keep = {}
        for h in host_list:
            spec = specs[_host_index(h["name"]) - 1]
            if (h.get("distro", "debian12") == spec["distro"]
                    and (h.get("ssh_user", "root") == "root") == spec["root_login"]
                    and _alive(h.get("pid"), _nspawn_marker(h["name"]))
                    and _host_ready(h["address"], user=h.get("ssh_user", "root"))[0]):
                keep[h["name"]] = h
        starting = []
        for i, spec in enumerate(specs, start=1):
            name, address = _host_name(i), _host_address(i)
            if name in keep:
                continue
            old = next((h for h in host_list if h["name"] == name), None)
            _stop_host(name, old and old.get("pid"))
            distro = DISTROS[spec["distro"]]
            root = _prepare_rootfs(name, address, bases[spec["distro"]], spec["distro"], spec["root_login"])
            made_hosts.append(name)
            pid = _start_host(name, root)
            keep[name] = {"name": name, "address": address, "pid": pid, "distro": spec["distro"],
                          "os": distro.label, "admin_user": distro.admin_user,
                          "ssh_user": "root" if spec["root_login"] else distro.admin_user}
            starting.append(keep[name])
            host_list = list(keep.values()) + [h for h in host_list if h["name"] not in keep]
            _save_state(host_list, services)
        host_list = list(keep.values())
        _write_known_hosts(host_list)
        _register_dns(host_list)
        for h in starting:                 # they boot in parallel; wait for each
            _wait_host(h["name"], h["address"], h["pid"], h["ssh_user"])
        return _save_state(host_list, services)
    except BaseException:
        # Undo what this call made; a fresh up leaves nothing behind at all.
        if fresh:
            _teardown()
        else:
            for name in made_hosts:
                _stop_host(name, None)
            _stop(made_services, 5)
            if made_bridge:
                subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
            host_list = [h for h in host_list if h["name"] not in made_hosts]
            services = {k: v for k, v in services.items() if v not in made_services}
            _write_known_hosts(host_list)
            _save_state(host_list, services)
        raise


def down() -> None:
    """Remove every container, mount, interface, process and rootfs of the sandbox.

    Keeps the base image cache and the SSH key pair. Works from a partial or
    missing state.json; a no-op when nothing is up."""
    if os.geteuid() != 0:
        raise SandboxError("sandbox down must run as root")
    if not state_dir().exists():
        _teardown()
        return
    with _locked(_paths()["lock"]):
        _teardown()


def _teardown() -> None:
    sd = state_dir()
    p = _paths(sd)
    state = _read_state()

    # Containers: the recorded nspawn pids plus any nspawn running a rootfs of ours.
    nspawn = {h.get("pid") for h in state.get("hosts", [])
              if _alive(h.get("pid"), _nspawn_marker(h.get("name", "")))}
    nspawn |= set(_pids(lambda a: "systemd-nspawn" in a[0]
                        and any(x.startswith(f"--machine={MACHINE_PREFIX}") for x in a)
                        and any(x.startswith(f"{p['hosts']}/") for x in a)))
    _stop(sorted(x for x in nspawn if x), STOP_TIMEOUT)
    _kill_orphans(p["hosts"])

    # Services: recorded pids plus anything started with our configs / addresses.
    specs = _service_specs()
    svc = {pid for name, pid in state.get("services", {}).items()
           if name in specs and _alive(pid, specs[name]["marker"])}
    for spec in specs.values():
        svc |= set(_service_pids(spec))
    _stop(sorted(svc), 10)

    _unmount_all(p["hosts"])               # all our mounts live there (never the state dir itself)
    # nspawn's veths vanish with the container's namespace; remove strays anyway.
    for link in json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True,
                                          text=True).stdout or "[]"):
        name = link["ifname"].split("@")[0]
        if name.startswith("vb-" + MACHINE_PREFIX) or (name == BRIDGE and _link_kind(BRIDGE) == "bridge"):
            subprocess.run(["ip", "link", "del", name], capture_output=True)

    _remove_tree(p["hosts"])
    for key in ("state", "known_hosts", "tinyproxy_conf", "pebble_conf", "pebble_ca",
                "pebble_cert", "pebble_key"):
        with contextlib.suppress(FileNotFoundError):
            p[key].unlink()


def status() -> dict:
    """Health of the sandbox: each host's process and SSH, each service's process and port."""
    report: dict = {"up": False, "healthy": False, "state": str(_paths()["state"]),
                    "error": None, "hosts": [], "services": {}}
    try:
        state = load_state()
    except SandboxError as e:
        report["error"] = str(e)
        return report
    report["up"] = True
    for h in state.get("hosts", []):
        alive = _alive(h.get("pid"), _nspawn_marker(h["name"]))
        ssh_ok, detail = (_host_ready(h["address"], timeout=10, user=h.get("ssh_user", "root")) if alive
                          else (False, "not running"))
        report["hosts"].append({**h, "alive": alive, "ssh": ssh_ok, "detail": detail})
    specs = _service_specs()
    for name, pid in state.get("services", {}).items():
        alive = name in specs and _alive(pid, specs[name]["marker"])
        listening = alive and all(_port_open(port) for port in specs[name]["ports"])
        report["services"][name] = {"pid": pid, "alive": alive, "listening": listening}
    report["healthy"] = (bool(report["hosts"])
                         and all(h["alive"] and h["ssh"] for h in report["hosts"])
                         and set(report["services"]) == set(specs)
                         and all(s["alive"] and s["listening"] for s in report["services"].values()))
    return report
