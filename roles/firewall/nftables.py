"""The firewall on nftables: the table `inet openclaw_kit`, applied by a script with a rollback timer.

templates/firewall/openclaw-kit-firewall-apply.j2 loads a ruleset and arms a rollback that only
`--confirm` (run over a new SSH connection, openclaw_kit.ssh_confirm) disarms.
"""

from __future__ import annotations

import hashlib
import io

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import files, systemd

from openclaw_kit.layout import KIT_STATE_DIR, NFT_CONF, NFT_DIR
from openclaw_kit.layout import NFT_TABLE as TABLE
from openclaw_kit.packages import install_missing
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render, template
from roles.firewall.policy import CONFIRM_SECONDS, load_and_confirm, ruleset_data

APPLY = "/usr/local/sbin/openclaw-kit-firewall-apply"
PERSISTED = f"{NFT_DIR}/openclaw-kit.nft"  # what nftables.service loads at boot; written on confirmation only
STATE_DIR = f"{KIT_STATE_DIR}/firewall"
DESIRED = f"{STATE_DIR}/openclaw-kit.nft"  # the rendered ruleset, waiting to be applied
MARKER = f"{STATE_DIR}/applied"  # "<sha256 of PERSISTED> <fingerprint of the live table>" at confirmation
RUN_DIR = "/run/openclaw-kit-firewall"  # tmpfs: a pending rollback does not survive a reboot, the persisted file wins
ROLLBACK_UNIT = "openclaw-kit-firewall-rollback"
SERVICE_OVERRIDE = "/etc/systemd/system/nftables.service.d/openclaw-kit.conf"
LOG_PREFIX = "openclaw-kit drop "
# The live table without counters (-s) and set contents (-t: the ban lists change by themselves);
# anonymous sets (admin and private networks) stay in the listing.
FINGERPRINT = f"nft -s -t list table inet {TABLE} 2>/dev/null | sha256sum | cut -c1-64"
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
    return render("firewall", "openclaw-kit.nft.j2", table=TABLE, log_prefix=LOG_PREFIX, **ruleset_data(settings))


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
