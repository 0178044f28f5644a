"""The platform table's row and the facts a row is chosen by.

Apart from platform.py (the Linux rows, the choice of a row) so that platform_macos.py (the macOS
rows) imports them from here: platform.py imports platform_macos.py, never the other way round."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Platform:
    label: str  # for people: "Debian 12"
    family: str  # templates that differ by platform live in templates/<role>/<family>/
    package_manager: str  # apt
    service_manager: str  # systemd
    firewall: str  # nftables
    scheduler: str  # cron.d
    log_rotation: str  # logrotate
    root_group: str  # the group of root-owned files: root (wheel on macOS)
    log_group: str  # the group that may read system logs: adm
    nologin: str  # the shell of accounts nobody logs in to
    sshd: str  # the sshd binary
    # The roles the kit has for this platform: deploy.py skips the others (roles_for) and a host refuses the
    # settings only they read (openclaw_kit/settings/platforms.py).
    roles: frozenset[str]
    # apt's security suite (empty on macOS, which has no apt):
    codename: str = ""  # the release's code name (bookworm): its security suite is <codename>-security
    security_uri: str = ""  # where that suite is served, should apt's sources lack it
    security_components: str = ""  # the components the kit adds it with
    archive_keyring: str = ""  # the keyring that signs it (Signed-By)
    # unattended-upgrades' Origins-Pattern entries that match the security suite and nothing else
    security_origins: tuple[str, ...] = ()
    # sshd's systemd units: the service reloaded for a new drop-in, and the socket that starts it
    # where the distro socket-activates sshd by default with the port from sshd_config ("": it does not)
    sshd_service: str = ""
    sshd_socket: str = ""
    # Settings of roles this platform runs that its mechanisms do not honour: setting -> why. Refused
    # like the settings of the roles it does not run.
    unhonoured_settings: Mapping[str, str] = field(default_factory=dict, hash=False)
    # Settings it honours with one value only: setting -> (that value, why); another value is refused.
    one_value_settings: Mapping[str, tuple[object, str]] = field(default_factory=dict, hash=False)



@dataclass(frozen=True)
class System:
    """The facts a platform is chosen by."""

    kernel: str
    distribution: str | None
    major: int | None
    minor: int | None = None
    arch: str | None = None  # uname -m; read on macOS only (arm64 or x86_64)

    @property
    def version(self) -> str:
        if self.major is None:
            return ""
        if self.distribution == "Ubuntu" and self.minor is not None:   # 24.04, as Ubuntu writes it
            return f"{self.major}.{self.minor:02d}"
        return str(self.major)

