"""The distros and their base images: a cached debootstrap per distro, made like its cloud image."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .files import _locked, _remove_tree, _tail, _unmount_all
from .layout import SandboxError, cache_dir
from .processes import _run

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


def _add_admin_user(root: Path, user: str) -> None:
    """The cloud image's admin user, with passwordless sudo as cloud-init gives it."""
    _run(["useradd", "--root", str(root), "--create-home", "--shell", "/bin/bash", "--groups", "sudo", user])
    sudoers = root / "etc" / "sudoers.d" / "90-cloud-init-users"
    sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
