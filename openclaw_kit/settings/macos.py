"""Settings a macOS host cannot honour (yet): refused per host before any change, not ignored.

The macOS path runs the roles its platform row has (platform_macos.MACOS: base, firewall, openclaw); a setting that
only a Linux role or mechanism reads would silently do nothing on a Mac.
"""

from __future__ import annotations

from openclaw_kit.settings.host import HostSettings

# setting -> why it does not apply to a Mac
LINUX_ONLY = {
    "hostname": "the kit does not set a Mac's names (scutil) yet",
    "ipv6_accept_ra": "a Linux sysctl; macOS has no equivalent the kit sets",
    "unattended_reboot": "an unattended-upgrades (apt) option; macOS installs its security updates itself",
    "unattended_reboot_time": "an unattended-upgrades (apt) option; macOS installs its security updates itself",
    "proxy_ca_file": "installed into Debian's trust store; the macOS keychain is not managed by the kit",
    "private_network": "role wireguard runs on Linux only",
    "admin_peers": "role wireguard runs on Linux only",
    "management": "role wireguard runs on Linux only",
    "offsite_backup": "role backup runs on Linux only",
    "fail2ban_bantime_seconds": "role fail2ban runs on Linux only",
    "fail2ban_findtime_seconds": "role fail2ban runs on Linux only",
    "fail2ban_maxretry": "role fail2ban runs on Linux only",
    "public_webhooks": "role nginx runs on Linux only",
    "dangerously_expose_control_ui_to_admin_cidrs": "role nginx runs on Linux only",
}


def macos_problems(name: str, settings: HostSettings) -> list[str]:
    """One line per setting the inventory gave this Mac that only a Linux host honours."""
    problems = [
        f"host {name}: {key} = {getattr(settings, key)!r}: {reason}; remove it for this macOS host"
        for key, reason in LINUX_ONLY.items()
        if key in settings.model_fields_set
    ]
    if settings.sshd_port != 22:
        problems.append(f"host {name}: sshd_port = {settings.sshd_port}: on macOS sshd listens where launchd's "
                        "com.openssh.sshd socket does (22); the kit does not move it")
    if settings.node_source != "nodejs-dist":
        problems.append(f"host {name}: node_source = {settings.node_source!r}: on macOS only 'nodejs-dist' (the "
                        "official darwin tarball); the npm node-darwin-* packages are stale")
    return problems
