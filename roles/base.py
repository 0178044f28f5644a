"""Role base: the host itself (hostname, package downloads through the configured proxy)."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, files, server

from roles.settings import HostSettings
from roles.templates import template

APT_PROXY = "/etc/apt/apt.conf.d/80openclaw-kit-proxy"
PACKAGES = ["ca-certificates"]


@deploy("Base host")
def base(settings: HostSettings):
    if settings.hostname:
        server.hostname(name=f"Set hostname {settings.hostname}", hostname=settings.hostname)

    if settings.proxy:
        template(name="Send apt through the proxy", role="base", src="apt-proxy.conf.j2", dest=APT_PROXY, proxy=settings.proxy)
    else:
        files.file(name="No apt proxy", path=APT_PROXY, present=False)

    install_missing(PACKAGES)


def install_missing(packages: list[str]) -> None:
    """Install what is missing; refresh the package lists only when something is (a no-op run stays one)."""
    installed = host.get_fact(DebPackages)
    missing = [name for name in packages if name not in installed]
    if missing:
        apt.packages(name=f"Install {' '.join(missing)}", packages=missing, update=True)
