"""Role firewall: one nftables table of the kit's own, applied atomically, lockout-proof."""

from pyinfra.api import deploy

from roles.settings import HostSettings


@deploy("Firewall")
def firewall(settings: HostSettings):
    pass
