"""Installing the packages a role needs, through the platform's package manager."""

from __future__ import annotations

from pyinfra import host
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt

from openclaw_kit.platform import platform_of

# apt's lists lock has no wait option (dpkg's has, see roles/base/debian.py): a refresh that meets
# apt-daily's own is tried again.
APT_RETRIES = {"_retries": 3, "_retry_delay": 20}

# package manager -> (fact listing the installed packages, operation installing some). Never the
# recommended packages: on Debian 12, cron's Recommends alone brought exim4 listening on port 25.
BACKENDS = {
    "apt": (
        DebPackages,
        lambda missing: apt.packages(
            name=f"Install {' '.join(missing)}", packages=missing, no_recommends=True, update=True,
            **APT_RETRIES,
        ),
    ),
}

# Host name -> the packages installed when this run began. Every role reads the list while the deploy
# is prepared, before any operation runs, so one listing per host serves them all.
INSTALLED_AT_START: dict[str, dict] = {}


def installed_packages() -> dict:
    """The packages installed on the host when this run began."""
    if host.name not in INSTALLED_AT_START:
        fact, _ = BACKENDS[platform_of(host).package_manager]
        INSTALLED_AT_START[host.name] = host.get_fact(fact)
    return INSTALLED_AT_START[host.name]


def install_missing(packages: list[str]) -> None:
    """Install what is missing, without recommended packages (nothing the kit did not ask for); refresh
    the package lists only when something is missing (a no-op run stays one)."""
    missing = [name for name in packages if name not in installed_packages()]
    if missing:
        _, install = BACKENDS[platform_of(host).package_manager]
        install(missing)
