"""The platform table: what differs between the operating systems the kit supports.

A host's platform is chosen from facts that cannot change during a run (kernel, distribution and
its major version), before any change; an unsupported system is a settings problem naming the
host. Roles ask the platform instead of hard-coding a package manager, a group or a path, and
where a whole mechanism differs (firewall, service manager, ...) they pick a backend module by
the platform's name for it, e.g. roles/firewall/nftables.py for `firewall="nftables"`.
"""

from __future__ import annotations

import weakref

from pyinfra import logger

from openclaw_kit.errors import SettingsError
from openclaw_kit.platform_macos import MACOS, MACOS_RELEASES, macos_problem, macos_system
from openclaw_kit.platform_types import Platform, System

_DEBIAN = dict(
    family="debian",
    package_manager="apt",
    service_manager="systemd",
    firewall="nftables",
    scheduler="cron.d",
    log_rotation="logrotate",
    root_group="root",
    log_group="adm",
    nologin="/usr/sbin/nologin",
    sshd="/usr/sbin/sshd",
    sshd_service="ssh.service",  # Debian's name for it (sshd.service is only an alias)
    roles=frozenset({"base", "firewall", "wireguard", "openclaw", "nginx", "fail2ban", "logs", "backup", "audit",
                     "monitoring", "tls"}),
)

# (distribution, major, minor version or None for any point release) -> its row. Ubuntu's minor is
# part of the release: 24.10 shares 24.04's major but is another system (and unsupported).
_DEBIAN_SECURITY = dict(
    security_uri="http://deb.debian.org/debian-security", security_components="main",
    # Both as Debian's own 50unattended-upgrades names the suite (Codename <codename>-security since
    # Debian 11, <codename> before); the point-release origins that file also lists are left out.
    security_origins=("origin=Debian,codename=${distro_codename}-security,label=Debian-Security",
                      "origin=Debian,codename=${distro_codename},label=Debian-Security"),
)
# Ubuntu's security suite on amd64; other architectures are served by ports.ubuntu.com/ubuntu-ports.
_UBUNTU_SECURITY = dict(
    security_uri="http://security.ubuntu.com/ubuntu", security_components="main restricted universe multiverse",
    archive_keyring="/usr/share/keyrings/ubuntu-archive-keyring.gpg",
    # Ubuntu's origins are matched by archive (a=), not codename; the ESM ones exist only on hosts
    # attached to Ubuntu Pro and match nothing elsewhere.
    security_origins=("origin=Ubuntu,archive=${distro_codename}-security",
                      "origin=UbuntuESMApps,archive=${distro_codename}-apps-security",
                      "origin=UbuntuESM,archive=${distro_codename}-infra-security"),
)

PLATFORMS: dict[tuple[str, int, int | None], Platform] = {
    ("Debian", 12, None): Platform(label="Debian 12", **_DEBIAN, codename="bookworm", **_DEBIAN_SECURITY,
                                   archive_keyring="/usr/share/keyrings/debian-archive-keyring.gpg"),
    # trixie's debian-archive-keyring ships its keyrings as .pgp (what its own debian.sources names).
    ("Debian", 13, None): Platform(label="Debian 13", **_DEBIAN, codename="trixie", **_DEBIAN_SECURITY,
                                   archive_keyring="/usr/share/keyrings/debian-archive-keyring.pgp"),
    # Ubuntu 24.04 starts sshd from ssh.socket, its port generated from sshd_config (Debian ships an
    # ssh.socket too, disabled, with ListenStream=22 fixed): a new sshd_port needs the socket restarted.
    ("Ubuntu", 24, 4): Platform(label="Ubuntu 24.04", **_DEBIAN, codename="noble", **_UBUNTU_SECURITY,
                                sshd_socket="ssh.socket"),
}

# macOS: its rows are described in platform_macos.py (tested on recorded facts, not on a real Mac).
PLATFORMS.update({("macOS", major, None): Platform(label=label, **MACOS) for major, label in MACOS_RELEASES.items()})


def platform_of_system(system: System) -> Platform | None:
    if system.kernel == "Darwin":
        return None if macos_problem(system) else PLATFORMS.get(("macOS", system.major, None))
    if system.kernel != "Linux":
        return None
    key = (system.distribution, system.major)
    return PLATFORMS.get((*key, system.minor)) or PLATFORMS.get((*key, None))


def system_problem(system: System) -> str | None:
    """Why the kit cannot run on this system (one line), or None."""
    if system.kernel == "Darwin":
        return macos_problem(system)
    if platform_of_system(system) is None:
        found = f"{system.distribution or 'unknown'} {system.version}".strip()
        supported = ", ".join(platform.label for platform in PLATFORMS.values())
        return f"{system.kernel} {found} is not supported: the kit supports {supported}"
    return None


# pyinfra runs a fact's command on every get_fact; every placed file asks for the platform (its
# root group), so the System is read once per host and kept while the host object lives.
_SYSTEMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def system_of(host) -> System:
    """The host's System from pyinfra's facts, read once per host."""
    if host not in _SYSTEMS:
        _SYSTEMS[host] = _read_system(host)
    return _SYSTEMS[host]


def _read_system(host) -> System:
    from pyinfra.facts.server import Kernel, LinuxDistribution

    kernel = host.get_fact(Kernel)
    if kernel == "Darwin":
        return macos_system(host)
    distro = host.get_fact(LinuxDistribution) if kernel == "Linux" else {}
    return System(kernel, distro.get("name"), distro.get("major"), distro.get("minor"))


def platform_of(host) -> Platform:
    """The host's platform; settings_for has refused unsupported systems before any role asks."""
    system = system_of(host)
    platform = platform_of_system(system)
    if platform is None:  # settings_for refuses it first; a role run on its own ends here
        raise SettingsError([f"host {host.name}: operating system = {system.distribution or system.kernel!r}: "
                             f"{system_problem(system)}"])
    return platform


def roles_for(host, roles: list):
    """Those of `roles` (deploy functions, in order) that the host's platform has; the deploy says once
    per host which it skipped and why."""
    platform = platform_of(host)
    skipped = [role.__name__ for role in roles if role.__name__ not in platform.roles]
    if skipped:
        logger.warning(f"[{host.name}] {platform.label}: roles {', '.join(skipped)} skipped: the kit has no "
                       f"{platform.family} backend for them yet (settings only they read are refused for this host)")
    # host.loop: the roles are called from one line of deploy.py, so pyinfra tells their operations apart
    # by the position in the whole list, the same on every platform.
    for role in host.loop(roles):
        if role.__name__ in platform.roles:
            yield role
