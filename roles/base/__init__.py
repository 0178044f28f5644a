"""Role base: the host itself, hardened.

On every platform a hardened sshd drop-in (sshd.py), checked with `sshd -t`/`sshd -T` on the host
before it goes live: a drop-in sshd rejects never stays in place. The rest is the platform's (by its family):
debian.py (apt's security suite and unattended upgrades, time sync, kernel, core dumps, logins) or
macos.py (the Application Firewall, automatic security updates, power settings, FileVault's state).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pyinfra import host
from pyinfra.api import deploy

from openclaw_kit.platform import platform_of
from openclaw_kit.settings import HostSettings
from roles.base import debian, macos
from roles.base.sshd import checked_dropin


@runtime_checkable
class BaseBackend(Protocol):
    """What a platform family's backend module provides: the host's hardening, sshd's template and reload."""

    SSHD_TEMPLATE: str  # the drop-in's template, in templates/base/

    def apply(self, settings: HostSettings) -> None: ...

    def reload_sshd(self, dropin_op) -> None:
        """Make sshd use its new drop-in when `dropin_op` changed it."""


# By the platform table's family.
BACKENDS: dict[str, BaseBackend] = {"debian": debian, "macos": macos}


@deploy("base")
def base(settings: HostSettings):
    platform = platform_of(host)
    backend = BACKENDS[platform.family]
    backend.apply(settings)
    backend.reload_sshd(checked_dropin(settings, platform, backend.SSHD_TEMPLATE))
