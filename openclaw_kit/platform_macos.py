"""macOS in the platform table: which releases and CPUs, read from `sw_vers` and `uname -m`.

Apart from platform.py so that the Linux rows stay as they are. The macOS path is tested on
recorded facts of a macOS 15 Apple-silicon host (tests/unit/fixtures/macos15_arm64/), never on a
real Mac.
"""

from __future__ import annotations

from openclaw_kit.platform_types import System

# What differs on macOS, in the fields of platform.Platform.
MACOS = dict(
    family="macos",
    package_manager="homebrew",  # runs as the admin user, never as root (it refuses root)
    service_manager="launchd",
    firewall="pf",
    scheduler="launchd",
    log_rotation="newsyslog",
    root_group="wheel",
    log_group="admin",
    nologin="/usr/bin/false",
    sshd="/usr/sbin/sshd",
    # Not wireguard, nginx, fail2ban, logs, backup, audit, tls (yet): a Mac refuses the settings only they read.
    roles=frozenset({"base", "firewall", "openclaw"}),
    # What roles/base/macos.py and roles/openclaw/launchd.py do not do that their Linux backends do.
    unhonoured_settings={
        "hostname": "the kit does not set a Mac's names (scutil) yet",
        "proxy_ca_file": "installed into Debian's trust store; the macOS keychain is not managed by the kit",
        "ipv6_accept_ra": "a Linux sysctl; macOS has no equivalent the kit sets",
        "unattended_reboot": "an unattended-upgrades (apt) option; macOS installs its security updates itself",
        "unattended_reboot_time": "an unattended-upgrades (apt) option; macOS installs its security updates itself",
        "login_umask": "set in Linux's /etc/profile.d; the kit does not set a Mac's login umask",
        "core_dumps": "set by Linux's limits, sysctl and systemd-coredump; the kit does not change a Mac's",
        "blocked_kernel_modules": "a Linux modprobe list; macOS loads kernel extensions by its own approval",
        "cron_root_only": "Linux's cron directories; the kit does not change a Mac's cron",
        "login_banner": "shown from Linux's /etc/issue.net; the Mac's sshd drop-in has no Banner",
        "gateway_start_timeout_seconds": "a deploy waits a fixed 180 s for the macOS LaunchDaemon",
    },
    one_value_settings={
        "sshd_port": (22, "on macOS sshd listens where launchd's com.openssh.sshd socket does (22); the kit does "
                          "not move it"),
        "node_source": ("nodejs-dist", "on macOS only 'nodejs-dist' (the official darwin tarball); the npm "
                                       "node-darwin-* packages are stale"),
    },
)

# major version (sw_vers -productVersion) -> label. 14 is the oldest the kit accepts because it was
# written for (and tested on recorded facts of) 14 and newer, not because older ones lack what it uses:
# `launchctl bootstrap/bootout/kickstart` are there since OS X 10.10, and Apple's sshd_config
# includes sshd_config.d/* (with its 100-macos.conf) since macOS 12 at the latest (published for
# 12.6.8: https://github.com/jtesta/ssh-audit/issues/201).
MACOS_RELEASES = {
    14: "macOS 14 Sonoma",
    15: "macOS 15 Sequoia",
    26: "macOS 26 Tahoe",
}

# uname -m -> the CPU name in Node.js' darwin tarballs.
MACOS_ARCHES = {"arm64": "arm64", "x86_64": "x64"}


def macos_problem(system) -> str | None:
    """Why the kit cannot run on this Mac (one line), or None."""
    if system.major not in MACOS_RELEASES:
        found = f"macOS {system.major}" if system.major else "macOS of unknown version (sw_vers gave no answer)"
        return f"{found} is not supported: the kit supports {', '.join(MACOS_RELEASES.values())}"
    if system.arch not in MACOS_ARCHES:
        return (f"{MACOS_RELEASES[system.major]} on CPU {system.arch!r} is not supported: "
                f"the kit supports {' and '.join(MACOS_ARCHES)} (uname -m)")
    return None


def macos_major(product_version: str | None) -> int | None:
    """14 from '14.7.1', 15 from '15.1'; None for anything else."""
    head = (product_version or "").strip().split(".")[0]
    return int(head) if head.isdigit() else None


def macos_system(host):
    """The System of a Darwin host, from sw_vers and uname -m."""
    from pyinfra.facts.server import Arch, MacosVersion

    return System("Darwin", "macOS", macos_major(host.get_fact(MacosVersion)), arch=host.get_fact(Arch))
