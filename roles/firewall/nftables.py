"""The firewall on nftables: the table `inet openclaw_kit`, applied by a script with a rollback timer.

templates/firewall/openclaw-kit-firewall-apply.j2 loads a ruleset and arms a rollback that only
`--confirm` (run over a new SSH connection, openclaw_kit.ssh_confirm) disarms.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.operations import files, python, server, systemd

from openclaw_kit.packages import install_missing
from openclaw_kit.settings import HostSettings
from openclaw_kit.ssh_confirm import confirm_over_new_connection
from openclaw_kit.templates import render, template

TABLE = "openclaw_kit"
APPLY = "/usr/local/sbin/openclaw-kit-firewall-apply"
NFT_CONF = "/etc/nftables.conf"
NFT_DIR = "/etc/nftables.d"
PERSISTED = f"{NFT_DIR}/openclaw-kit.nft"  # what nftables.service loads at boot; written on confirmation only
STATE_DIR = "/var/lib/openclaw-kit/firewall"
DESIRED = f"{STATE_DIR}/openclaw-kit.nft"  # the rendered ruleset, waiting to be applied
MARKER = f"{STATE_DIR}/applied"  # "<sha256 of PERSISTED> <fingerprint of the live table>" at confirmation
RUN_DIR = "/run/openclaw-kit-firewall"  # tmpfs: a pending rollback does not survive a reboot, the persisted file wins
ROLLBACK_UNIT = "openclaw-kit-firewall-rollback"
SERVICE_OVERRIDE = "/etc/systemd/system/nftables.service.d/openclaw-kit.conf"
LOG_PREFIX = "openclaw-kit drop "
# The live table without counters (-s) and set contents (-t: the ban lists change by themselves);
# anonymous sets (admin and private networks) stay in the listing.
FINGERPRINT = f"nft -s -t list table inet {TABLE} 2>/dev/null | sha256sum | cut -c1-64"
CONFIRM_SECONDS = 45  # the new ruleset's probation: no confirmation by then, and it is rolled back
PACKAGES = ["nftables"]


def apply(settings: HostSettings):
    install_missing(PACKAGES)

    files.directory(name=f"Firewall state directory {STATE_DIR}", path=STATE_DIR, mode="700")
    files.directory(name=f"Ruleset directory {NFT_DIR}", path=NFT_DIR, mode="755")
    template(
        name=f"Apply script {APPLY}",
        role="firewall",
        src="openclaw-kit-firewall-apply.j2",
        dest=APPLY,
        mode="750",
        **script_data(),
    )
    rules = ruleset(settings)
    files.put(
        name=f"Desired ruleset {DESIRED}", src=io.StringIO(rules), dest=DESIRED, mode="600", create_remote_dir=False
    )

    # Persistence: nftables.service loads the kit's file at boot, and stopping it removes only the kit's table.
    template(name=f"{NFT_CONF} includes {NFT_DIR}, flushes nothing", role="firewall", src="nftables.conf.j2",
             dest=NFT_CONF, mode="755", include_dir=NFT_DIR, persisted=PERSISTED)
    override_op = template(
        name="nftables.service stops by deleting only the kit's table",
        role="firewall",
        src="nftables-service-override.conf.j2",
        dest=SERVICE_OVERRIDE,
        table=TABLE,
    )
    systemd.daemon_reload(name="Reload systemd for the nftables.service override", _if=override_op.did_change)
    systemd.service(name="nftables.service enabled and running", service="nftables.service", running=True, enabled=True)

    # Apply only when the live table, the persisted file or the record of the last confirmation
    # differs from the rendered ruleset: a no-op run stays one, hand edits are undone.
    if not in_sync(host.get_fact(FirewallStatus), rules):
        load_and_confirm(f"Load the firewall ruleset (rolled back in {CONFIRM_SECONDS} s unless confirmed)",
                         APPLY, DESIRED)


# --- the ruleset ---------------------------------------------------------------------------------


def ruleset(settings: HostSettings) -> str:
    """The kit's nftables table for these settings, as the file nft loads."""
    return render("firewall", "openclaw-kit.nft.j2", **ruleset_data(settings))


def ruleset_data(settings: HostSettings) -> dict:
    # SSH: the admin networks (never banned) and ssh_cidrs (fail2ban may ban their addresses).
    ssh = [ipaddress.ip_network(cidr) for cidr in [*settings.admin_cidrs, *settings.ssh_cidrs]]
    private = [ipaddress.ip_network(cidr) for cidr in settings.private_cidrs]
    if settings.public_interface:
        public_match = f'iifname "{settings.public_interface}" '
    elif settings.private_interface:
        public_match = f'iifname != "{settings.private_interface}" '  # public = any interface but the private one
    else:
        public_match = ""
    proxy_port = urlsplit(settings.proxy).port if settings.proxy else None
    return dict(
        table=TABLE,
        log_prefix=LOG_PREFIX,
        gateway_port=settings.gateway_port,
        sshd_port=settings.sshd_port,
        public_match=public_match,
        ssh_v4=collapsed(ssh, 4),
        ssh_v6=collapsed(ssh, 6),
        private_match=f'iifname "{settings.private_interface}" ' if settings.private_interface else "",
        private_v4=[str(net) for net in private if net.version == 4],
        private_v6=[str(net) for net in private if net.version == 6],
        # 443 too: operators reach the Control UI through nginx over the private network (role nginx).
        private_ports=sorted(set(settings.private_allowed_ports) | ({443} if private else set())),
        egress=settings.egress,
        proxy_port=proxy_port if proxy_port not in (80, 443) else None,
        egress_ports=sorted(set(settings.egress_allowed_ports)),
        **mesh_data(settings),
    )


def mesh_data(settings: HostSettings) -> dict:
    """The WireGuard mesh (roles/wireguard.py): its UDP port public, its interface a private zone."""
    mesh = settings.private_network
    if mesh is None:
        return dict(mesh=None, public_ssh=True)
    network = ipaddress.ip_network(mesh.cidr)
    return dict(
        # management: private: no SSH on the public side at all; admins come in over the mesh.
        public_ssh=settings.management == "public",
        mesh=dict(
            port=mesh.port,
            interface=mesh.interface,
            family="ip" if network.version == 4 else "ip6",
            cidr=str(network),
            ports=sorted({settings.sshd_port, 443, *settings.private_allowed_ports}),
        ),
    )


def collapsed(networks: list, version: int) -> list[str]:
    """The networks of one IP version, overlapping and adjacent ones merged.

    nft merges them itself when it loads a set, and then lists a set that no longer reloads to the
    same table (a merged `{ 10.0.0.0/24 }` comes back as a plain match): the fingerprint of the
    table would change on every rollback.
    """
    return [str(net) for net in ipaddress.collapse_addresses(net for net in networks if net.version == version)]


def script_data() -> dict:
    return dict(path=APPLY, table=TABLE, run_dir=RUN_DIR, persisted=PERSISTED, marker=MARKER, unit=ROLLBACK_UNIT,
                fingerprint=FINGERPRINT, default_timeout=CONFIRM_SECONDS)


# --- is the live firewall the rendered one? ------------------------------------------------------


class FirewallStatus(FactBase):
    """The persisted kit file's sha256, the record of the last confirmation, the live table's fingerprint."""

    def requires_command(self) -> str:
        return "nft"

    def command(self) -> str:
        return (
            f'echo "persisted $(sha256sum < {PERSISTED} 2>/dev/null | cut -c1-64)"; '
            f'echo "marker $(cat {MARKER} 2>/dev/null)"; '
            f'echo "live $({FINGERPRINT})"'
        )

    def process(self, output) -> dict[str, str]:
        return {key: value.strip() for key, _, value in (line.partition(" ") for line in output)}


def in_sync(status: dict | None, rules: str) -> bool:
    """True when the confirmed, persisted and live table all are `rules`."""
    if not status:
        return False  # no nft yet
    sha = hashlib.sha256(rules.encode()).hexdigest()
    return status.get("persisted") == sha and status.get("marker") == f"{sha} {status.get('live')}"


def load_and_confirm(name: str, apply: str, desired: str) -> None:
    """Load `desired` with the apply script's rollback timer armed, then confirm it over a new SSH
    connection (what a firewall that cut SSH could not do), for every firewall backend."""
    server.shell(name=name, commands=[f"{apply} --timeout {CONFIRM_SECONDS} {desired}"])
    if issubclass(host.connector_cls, SSHConnector):
        python.call(
            name="Confirm the firewall over a new SSH connection",
            function=confirm_over_new_connection,
            confirm_command=f"{apply} --confirm",
            probation_seconds=CONFIRM_SECONDS,
        )
    else:
        # local, docker, ...: no SSH connection a firewall could cut.
        server.shell(name="Confirm the firewall", commands=[f"{apply} --confirm"])
