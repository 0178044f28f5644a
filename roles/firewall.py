"""Role firewall: one nftables table of the kit's own, applied atomically, lockout-proof.

The ruleset is rendered from settings into one file holding the whole table `inet openclaw_kit`;
other tables (container runtimes, a hand-made one) are never touched. Two guards keep the admin
in: before any change the deploy refuses when its own SSH connection would not be allowed by the
new rules, and a new ruleset is loaded with an automatic rollback (templates/firewall/
openclaw-kit-firewall-apply.j2) that only a NEW SSH connection from the controller disarms.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import time
from urllib.parse import urlsplit

from pyinfra import host, logger
from pyinfra.api import FactBase, StringCommand, deploy
from pyinfra.api.arguments import auth_argument_meta
from pyinfra.api.exceptions import ConnectError
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.operations import files, python, server, systemd

from roles.base import install_missing
from roles.settings import HostSettings, SettingsError
from roles.templates import render, template

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


@deploy("Firewall")
def firewall(settings: HostSettings):
    refuse_lockout(settings)
    install_missing(PACKAGES)

    files.directory(name=f"Firewall state directory {STATE_DIR}", path=STATE_DIR, mode="700")
    files.directory(name=f"Ruleset directory {NFT_DIR}", path=NFT_DIR, mode="755")
    template(name=f"Apply script {APPLY}", role="firewall", src="openclaw-kit-firewall-apply.j2", dest=APPLY, mode="750",
             **script_data())
    rules = ruleset(settings)
    files.put(name=f"Desired ruleset {DESIRED}", src=io.StringIO(rules), dest=DESIRED, mode="600", create_remote_dir=False)

    # Persistence: nftables.service loads the kit's file at boot, and stopping it removes only the kit's table.
    template(name=f"{NFT_CONF} includes {NFT_DIR}, flushes nothing", role="firewall", src="nftables.conf.j2", dest=NFT_CONF,
             mode="755", include_dir=NFT_DIR, persisted=PERSISTED)
    override_op = template(name="nftables.service stops by deleting only the kit's table", role="firewall",
                           src="nftables-service-override.conf.j2", dest=SERVICE_OVERRIDE, table=TABLE)
    systemd.daemon_reload(name="Reload systemd for the nftables.service override", _if=override_op.did_change)
    systemd.service(name="nftables.service enabled and running", service="nftables.service", running=True, enabled=True)

    # Apply only when the live table, the persisted file or the record of the last confirmation
    # differs from the rendered ruleset: a no-op run stays one, hand edits are undone.
    if not in_sync(host.get_fact(FirewallStatus), rules):
        server.shell(
            name=f"Load the firewall ruleset (rolled back in {CONFIRM_SECONDS} s unless confirmed)",
            commands=[f"{APPLY} --timeout {CONFIRM_SECONDS} {DESIRED}"],
        )
        if issubclass(host.connector_cls, SSHConnector):
            python.call(name="Confirm the firewall over a new SSH connection", function=confirm_over_new_connection)
        else:
            # local, docker, ...: no SSH connection a firewall could cut.
            server.shell(name="Confirm the firewall", commands=[f"{APPLY} --confirm"])


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
        return (f"echo \"persisted $(sha256sum < {PERSISTED} 2>/dev/null | cut -c1-64)\"; "
                f"echo \"marker $(cat {MARKER} 2>/dev/null)\"; "
                f"echo \"live $({FINGERPRINT})\"")

    def process(self, output) -> dict[str, str]:
        return {key: value.strip() for key, _, value in (line.partition(" ") for line in output)}


def in_sync(status: dict | None, rules: str) -> bool:
    """True when the confirmed, persisted and live table all are `rules`."""
    if not status:
        return False  # no nft yet
    sha = hashlib.sha256(rules.encode()).hexdigest()
    return status.get("persisted") == sha and status.get("marker") == f"{sha} {status.get('live')}"


# --- lockout guard 1: refuse rules that would not admit this very deploy ---------------------------


class SshConnection(FactBase):
    """(client address, server port) of the deploy's own SSH connection, from $SSH_CONNECTION; None without one."""

    def command(self) -> str:
        return 'echo "${SSH_CONNECTION:-}"'

    def process(self, output) -> tuple[str, int] | None:
        words = " ".join(output).split()
        if len(words) != 4 or not words[3].isdigit():
            return None
        return words[0], int(words[3])


def lockout_problem(settings: HostSettings, connection: tuple[str, int] | None) -> str | None:
    """Why the new firewall would cut this deploy's way in (one line), or None."""
    if connection is None:
        return ("cannot tell which address this deploy's SSH connection comes from ($SSH_CONNECTION is empty), "
                "so the firewall cannot be shown not to lock it out")
    address, port = connection
    try:
        client = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return f"$SSH_CONNECTION names {address!r}, not an IP address"
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped:
        client = client.ipv4_mapped
    if not any(client in ipaddress.ip_network(cidr) for cidr in settings.admin_cidrs):
        return (f"this deploy connects from {client}, which is not in admin_cidrs = {settings.admin_cidrs}: "
                f"the firewall would lock it out (add {client} to admin_cidrs, or deploy from an admin network)")
    if port != settings.sshd_port:
        return (f"this deploy connects to SSH port {port}, but sshd_port = {settings.sshd_port} is the only SSH port "
                "the firewall opens: it would lock the deploy out")
    return None


def refuse_lockout(settings: HostSettings) -> None:
    # Runs while pyinfra prepares every host, before anything executes: one refusal, zero changes.
    if not issubclass(host.connector_cls, SSHConnector):
        return
    # Without sudo: sudo's env_reset drops SSH_CONNECTION.
    problem = lockout_problem(settings, host.get_fact(SshConnection, _sudo=False))
    if problem:
        raise SettingsError([f"host {host.name}: admin_cidrs: {problem}"])


# --- lockout guard 2: confirm over a new connection, or let the host roll back --------------------


def confirm_over_new_connection(state, host) -> bool:
    """Disarm the rollback over a NEW SSH connection; without one, wait for the rollback and fail."""
    started = time.monotonic()
    error = "no attempt"
    # Leave the last attempt (pyinfra's connect timeout) time to finish before the host's timer fires.
    while time.monotonic() - started < CONFIRM_SECONDS - state.config.CONNECT_TIMEOUT - 5:
        ok, error = _run_over_new_connection(state, host, f"{APPLY} --confirm")
        if ok:
            return True
        if "nothing to confirm" in error:
            break  # the host already rolled back
        time.sleep(2)
    # The rollback fires CONFIRM_SECONDS after the load, which ended just before this call.
    time.sleep(max(0.0, CONFIRM_SECONDS + 5 - (time.monotonic() - started)))
    reachable, _ = _run_over_new_connection(state, host, "true")
    host.log_styled(
        f"the new firewall ruleset was NOT kept: no new SSH connection could confirm it within {CONFIRM_SECONDS} s "
        f"(last error: {error.strip().splitlines()[-1] if error.strip() else 'none'}). The host restored its previous "
        f"kit table by itself; a new SSH connection now {'works again' if reachable else 'STILL FAILS'}. "
        f"Nothing was persisted. Check admin_cidrs, sshd_port and public_interface.",
        fg="red", log_func=logger.error,
    )
    return False


def _run_over_new_connection(state, host, command: str) -> tuple[bool, str]:
    """Run command over a fresh SSH connection made from the host's inventory data, as pyinfra makes its own."""
    connector = host.connector_cls(state, host)
    connector.data = {**connector.data, "ssh_connect_retries": 0}
    # The deploy's own sudo/su settings (inventory, else command line), so the command runs as its commands do.
    auth = {key: host.data.get(key, meta.default(state.config)) for key, meta in auth_argument_meta.items()}
    try:
        connector.connect()
    except ConnectError as connect_error:
        return False, str(connect_error)
    try:
        ok, output = connector.run_shell_command(StringCommand(command), print_output=False, print_input=False,
                                                 _timeout=30, **auth)
        return ok, output.stderr
    except Exception as run_error:  # a connection that dies mid-command
        return False, str(run_error)
    finally:
        if connector.client is not None:
            connector.client.close()
