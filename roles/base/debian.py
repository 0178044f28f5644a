"""Role base on Debian and Ubuntu (the sshd drop-in is roles/base/sshd.py's, on every platform).

Hostname, package downloads through the configured proxy, the distro's security suite in apt's
sources and unattended security upgrades from it, time sync, kernel hardening (sysctl, blocked
modules, no core dumps), login shells' umask and a login banner.
"""

from __future__ import annotations

import re

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.server import Arch, Sysctl
from pyinfra.operations import apt, files, server, systemd

from openclaw_kit.facts import Container
from openclaw_kit.packages import APT_RETRIES, install_missing, installed_packages
from openclaw_kit.platform import platform_of
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import template
from roles.base.sshd import ISSUE_NET

APT_PROXY = "/etc/apt/apt.conf.d/80openclaw-kit-proxy"
# unattended-upgrades (or cloud-init) at work on a fresh host holds dpkg's lock for minutes: apt waits
# for it (apt >= 1.9.11) instead of failing the deploy, and so does an admin's apt-get.
APT_LOCK_WAIT = "/etc/apt/apt.conf.d/50openclaw-kit-lock-wait"
APT_LOCK_WAIT_SECONDS = 600
PROXY_CA = "/usr/local/share/ca-certificates/openclaw-kit-proxy.crt"
# After the package's own 50unattended-upgrades (and 20auto-upgrades), so its values win.
UNATTENDED_UPGRADES = "/etc/apt/apt.conf.d/52openclaw-kit-unattended-upgrades"
APT_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")
SYSCTL_FILE = "/etc/sysctl.d/90-openclaw-kit.conf"
SECURITY_SOURCE = "/etc/apt/sources.list.d/openclaw-kit-security.sources"
APT_SOURCE_FILES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources")
LOGIN_UMASK = "/etc/profile.d/openclaw-kit-umask.sh"
MODPROBE_FILE = "/etc/modprobe.d/openclaw-kit-blocked.conf"
CORE_LIMITS = "/etc/security/limits.d/90-openclaw-kit-no-core.conf"
COREDUMP_DROPIN = "/etc/systemd/coredump.conf.d/90-openclaw-kit.conf"
SYSTEM_DROPIN = "/etc/systemd/system.conf.d/90-openclaw-kit-no-core.conf"
PACKAGES = ["ca-certificates", "procps", "unattended-upgrades"]
# Another time-sync daemon already keeps the clock: installing systemd-timesyncd would remove it.
OTHER_TIME_DAEMONS = ("chrony", "ntp", "ntpsec", "openntpd")

# The bar: dev-sec linux-baseline's sysctl controls and the sysctl set of dev-sec's Ansible
# os_hardening role, plus kernel.dmesg_restrict, kernel.unprivileged_bpf_disabled and
# net.core.bpf_jit_harden. Deliberately not set: kernel.modules_disabled (one-way; nftables loads
# its modules on demand), net.ipv4.tcp_timestamps=0 (Linux randomises timestamps per connection
# since 4.10, so they no longer leak uptime; turning them off loses PAWS and RTT measurement),
# net.ipv6.conf.all.disable_ipv6 (hosts are reached over IPv6 too).
SYSCTL: list[tuple[str, int | str, str]] = [
    # (key, value, why)
    ("fs.protected_hardlinks", 1, "No hard links to files the user does not own (TOCTOU /tmp races)."),
    ("fs.protected_symlinks", 1, "Symlinks in sticky world-writable directories are followed only by their owner."),
    ("fs.protected_fifos", 1, "No opening others' FIFOs in sticky world-writable directories with O_CREAT."),
    ("fs.protected_regular", 2, "No opening others' regular files in sticky directories with O_CREAT."),
    ("fs.suid_dumpable", 0, "No core dumps of setuid programs (they may hold secrets)."),
    ("kernel.core_uses_pid", 1, "Core file names carry the PID."),
    ("kernel.core_pattern", "|/bin/false", "No core files: every dump goes to a program that discards it."),
    ("kernel.kptr_restrict", 2, "Kernel addresses hidden from everyone, root included."),
    ("kernel.dmesg_restrict", 1, "Only CAP_SYSLOG reads the kernel log."),
    ("kernel.kexec_load_disabled", 1, "No replacing the running kernel with kexec (one-way until reboot)."),
    ("kernel.sysrq", 0, "No magic SysRq key."),
    ("kernel.randomize_va_space", 2, "Full address space layout randomisation."),
    ("kernel.yama.ptrace_scope", 1, "A process may ptrace only its own descendants."),
    ("kernel.unprivileged_bpf_disabled", 1, "No bpf() for unprivileged users (one-way until reboot)."),
    ("net.core.bpf_jit_harden", 2, "Hardened BPF JIT (constant blinding) for every user."),
    ("vm.mmap_min_addr", 65536, "The zero page stays unmappable (kernel NULL-dereference exploits)."),
    ("vm.mmap_rnd_bits", 32, "Maximum mmap ASLR entropy (x86_64)."),
    ("vm.mmap_rnd_compat_bits", 16, "Maximum mmap ASLR entropy for 32-bit programs (x86_64)."),
    ("net.ipv4.ip_forward", 0, "Not a router: no IPv4 forwarding."),
    ("net.ipv6.conf.all.forwarding", 0, "Not a router: no IPv6 forwarding."),
    ("net.ipv4.conf.all.rp_filter", 1, "Strict reverse path filtering (drops spoofed sources)."),
    ("net.ipv4.conf.default.rp_filter", 1, "Strict reverse path filtering for new interfaces."),
    ("net.ipv4.icmp_echo_ignore_broadcasts", 1, "No answers to broadcast pings (smurf amplification)."),
    ("net.ipv4.icmp_ignore_bogus_error_responses", 1, "No logging of bogus ICMP error responses."),
    ("net.ipv4.icmp_ratelimit", 100, "ICMP replies rate-limited."),
    ("net.ipv4.icmp_ratemask", 88089, "Rate-limited ICMP types include echo reply and unreachables."),
    ("net.ipv4.conf.all.arp_ignore", 1, "ARP replies only for addresses on the receiving interface."),
    ("net.ipv4.conf.all.arp_announce", 2, "ARP requests use the best local source address."),
    ("net.ipv4.tcp_rfc1337", 1, "RFC 1337: no TIME-WAIT assassination."),
    ("net.ipv4.tcp_syncookies", 1, "SYN cookies under SYN floods."),
    ("net.ipv4.conf.all.shared_media", 1, "RFC 1620 shared media redirects (kernel default, pinned)."),
    ("net.ipv4.conf.default.shared_media", 1, "RFC 1620 shared media redirects for new interfaces."),
    ("net.ipv4.conf.all.accept_source_route", 0, "No source-routed IPv4 packets."),
    ("net.ipv4.conf.default.accept_source_route", 0, "No source-routed IPv4 packets on new interfaces."),
    ("net.ipv6.conf.all.accept_source_route", 0, "No source-routed IPv6 packets."),
    ("net.ipv6.conf.default.accept_source_route", 0, "No source-routed IPv6 packets on new interfaces."),
    ("net.ipv4.conf.all.send_redirects", 0, "Not a router: no ICMP redirects sent."),
    ("net.ipv4.conf.default.send_redirects", 0, "No ICMP redirects sent from new interfaces."),
    ("net.ipv4.conf.all.log_martians", 1, "Packets with impossible addresses are logged."),
    ("net.ipv4.conf.default.log_martians", 1, "Martians logged on new interfaces."),
    ("net.ipv4.conf.all.accept_redirects", 0, "No ICMP redirects accepted (routing table poisoning)."),
    ("net.ipv4.conf.default.accept_redirects", 0, "No ICMP redirects accepted on new interfaces."),
    ("net.ipv4.conf.all.secure_redirects", 0, "Not even redirects from listed gateways."),
    ("net.ipv4.conf.default.secure_redirects", 0, "Not even redirects from listed gateways, new interfaces."),
    ("net.ipv6.conf.all.accept_redirects", 0, "No IPv6 redirects accepted."),
    ("net.ipv6.conf.default.accept_redirects", 0, "No IPv6 redirects accepted on new interfaces."),
    ("net.ipv6.conf.all.accept_ra", 0, "No IPv6 router advertisements (static addressing)."),
    ("net.ipv6.conf.default.accept_ra", 0, "No IPv6 router advertisements on new interfaces."),
    ("net.ipv6.conf.all.router_solicitations", 0, "No IPv6 router solicitations sent."),
    ("net.ipv6.conf.default.router_solicitations", 0, "No IPv6 router solicitations from new interfaces."),
    ("net.ipv6.conf.default.accept_ra_rtr_pref", 0, "No router preference learnt from advertisements."),
    ("net.ipv6.conf.default.accept_ra_pinfo", 0, "No prefix information learnt from advertisements."),
    ("net.ipv6.conf.default.accept_ra_defrtr", 0, "No default router learnt from advertisements."),
    ("net.ipv6.conf.all.autoconf", 0, "No IPv6 address autoconfiguration."),
    ("net.ipv6.conf.default.autoconf", 0, "No IPv6 address autoconfiguration on new interfaces."),
    ("net.ipv6.conf.default.dad_transmits", 0, "No duplicate address detection probes (static addresses)."),
    ("net.ipv6.conf.default.max_addresses", 1, "One global IPv6 address per interface."),
]
# What ipv6_accept_ra: true leaves to the kernel's defaults, so SLAAC keeps working.
RA_KEYS = frozenset(key for key, _, _ in SYSCTL if key.startswith("net.ipv6.conf.") and key.rsplit(".", 1)[1] in (
    "accept_ra", "router_solicitations", "accept_ra_rtr_pref", "accept_ra_pinfo", "accept_ra_defrtr",
    "autoconf", "dad_transmits", "max_addresses"))
CORE_KEYS = frozenset({"kernel.core_pattern"})  # fs.suid_dumpable stays 0 either way
# The maximum mmap entropy differs per architecture and kernel configuration.
X86_64_ONLY = frozenset({"vm.mmap_rnd_bits", "vm.mmap_rnd_compat_bits"})


class AptSources(FactBase):
    """The suites each of apt's source files names (see apt_suites)."""

    default = dict

    def command(self):
        return f"for f in {' '.join(APT_SOURCE_FILES)}; do [ -f \"$f\" ] && echo \"==> $f\" && cat \"$f\"; done; true"

    def process(self, output):
        return apt_suites(output)


def apt_suites(lines: list[str]) -> dict[str, set[str]]:
    """Source file -> the suites its `deb` entries name, in either style: one-line (sources.list,
    Debian 12) or deb822 (.sources, Debian 13 and Ubuntu 24.04). Lines as `==> path` then its text."""
    found: dict[str, set[str]] = {}
    current = None
    for line in lines:
        if line.startswith("==> "):
            current = line[4:].strip()
            found[current] = set()
            continue
        text = line.split("#", 1)[0].strip()
        if current is None or not text:
            continue
        if text.startswith("deb "):
            parts = re.sub(r"\[[^]]*\]", " ", text).split()  # [arch=... signed-by=...] options
            if len(parts) >= 3:
                found[current].add(parts[2])
        elif text.lower().startswith("suites:"):
            found[current].update(text.split(":", 1)[1].split())
    return found


def kernel_settings(*, container: str | None, arch: str, present: set[str] | None, ipv6_accept_ra: bool,
                    core_dumps: bool = False):
    """The sysctl keys to set on this host as (key, value, why), and those skipped as (key, value, reason).

    Only facts that cannot change during a run decide: the container, the architecture, the keys
    this kernel has (present=None: assume all), and settings.
    """
    apply, skipped = [], []
    for key, value, why in SYSCTL:
        if container and not key.startswith(("net.ipv4.", "net.ipv6.")):
            # A container has its own network namespace (net.ipv4/ipv6 are per namespace); every
            # other key belongs to the shared kernel: read-only in here (or absent, like net.core.*).
            reason = (f"kernel-wide, read-only inside this {container} container: "
                      "set it on the machine that runs the container")
        elif present is not None and key not in present:
            reason = "this kernel has no such key"
        elif key in X86_64_ONLY and arch not in ("x86_64", "amd64"):
            reason = f"the maximum depends on the architecture; the kernel default is kept on {arch}"
        elif ipv6_accept_ra and key in RA_KEYS:
            reason = "ipv6_accept_ra: true in settings (router advertisements and SLAAC stay on)"
        elif core_dumps and key in CORE_KEYS:
            reason = "core_dumps: true in settings"
        else:
            apply.append((key, value, why))
            continue
        skipped.append((key, value, reason))
    return apply, skipped


SSHD_TEMPLATE = "sshd.conf.j2"


def sshd_reload_command(platform) -> str:
    """Shell that makes sshd use its new drop-in. Where sshd is socket-activated with the port generated
    from sshd_config, a new Port needs the generator re-run and the socket restarted (Ubuntu's documented
    procedure); an admin who went back to the plain service has no active socket, so only the service."""
    reload = f"systemctl reload-or-restart {platform.sshd_service}"
    socket = platform.sshd_socket
    if not socket:
        return reload
    restart_socket = f"systemctl daemon-reload && systemctl restart {socket}"
    return f"if systemctl is-active --quiet {socket}; then {restart_socket}; fi; {reload}"


def apply(settings: HostSettings) -> None:
    platform = platform_of(host)
    if settings.hostname:
        server.hostname(name=f"Set hostname {settings.hostname}", hostname=settings.hostname)

    # Before the first apt operation of the run.
    template(name=f"apt waits for dpkg's lock (up to {APT_LOCK_WAIT_SECONDS} s)", role="base",
             src=f"{platform.family}/apt-lock-wait.conf.j2", dest=APT_LOCK_WAIT, seconds=APT_LOCK_WAIT_SECONDS)

    if settings.proxy:
        template(
            name="Send apt through the proxy",
            role="base",
            src=f"{platform.family}/apt-proxy.conf.j2",
            dest=APT_PROXY,
            proxy=settings.proxy,
        )
    else:
        files.file(name="No apt proxy", path=APT_PROXY, present=False)

    _security_suite(platform)

    installed = installed_packages()
    time_daemons = [name for name in OTHER_TIME_DAEMONS if name in installed]
    install_missing(PACKAGES + ([] if time_daemons else ["systemd-timesyncd"]))

    if settings.proxy_ca_file:
        ca_op = files.put(name="Trust the proxy's CA", src=settings.proxy_ca_file, dest=PROXY_CA, mode="644")
        server.shell(
            name="Rebuild the CA store with the proxy's CA", commands=["update-ca-certificates"], _if=ca_op.did_change
        )
    else:
        files.file(name="No proxy CA", path=PROXY_CA, present=False)

    container = host.get_fact(Container)
    _unattended_upgrades(settings, platform)
    _time_sync(container, time_daemons)
    _kernel(settings, container)
    _modules(settings)
    _core_dumps(settings, "systemd-coredump" in installed)
    _logins(settings)


def _security_suite(platform) -> None:
    suite = f"{platform.codename}-security"
    elsewhere = any(suite in suites for path, suites in host.get_fact(AptSources).items() if path != SECURITY_SOURCE)
    if elsewhere:
        source_op = files.file(name=f"apt sources: {suite} is already there (no source of the kit's)",
                               path=SECURITY_SOURCE, present=False)
    else:
        source_op = template(
            name=f"apt sources: add the security suite {suite}",
            role="base",
            src=f"{platform.family}/security.sources.j2",
            dest=SECURITY_SOURCE,
            suite=suite,
            uri=platform.security_uri,
            components=platform.security_components,
            keyring=platform.archive_keyring,
        )
    apt.update(name="Refresh the package lists for the changed sources", _if=source_op.did_change, **APT_RETRIES)


def _modules(settings: HostSettings) -> None:
    if settings.blocked_kernel_modules:
        template(name=f"Blocked kernel modules {MODPROBE_FILE}", role="base", src="modprobe.conf.j2",
                 dest=MODPROBE_FILE, modules=settings.blocked_kernel_modules,
                 jinja_env_kwargs={"trim_blocks": True, "lstrip_blocks": True})
    else:
        files.file(name=f"No blocked kernel modules {MODPROBE_FILE}", path=MODPROBE_FILE, present=False)


def _core_dumps(settings: HostSettings, coredump_installed: bool) -> None:
    """No core dumps: from login sessions (limits.d), from services (systemd's DefaultLimitCORE), nor
    kept by systemd-coredump; the kernel side (core_pattern, suid_dumpable) is in the sysctl file."""
    off = not settings.core_dumps
    for path, src, why in ((CORE_LIMITS, "limits.conf.j2", "login sessions"),
                           (COREDUMP_DROPIN, "coredump.conf.j2", "systemd-coredump keeps none")):
        if off and (path != COREDUMP_DROPIN or coredump_installed):
            template(name=f"No core dumps: {why} ({path})", role="base", src=src, dest=path)
        else:
            files.file(name=f"Core dumps as the system has them: no {path}", path=path, present=False)
    if off:
        manager_op = template(name=f"No core dumps: services ({SYSTEM_DROPIN})", role="base",
                              src="system-limits.conf.j2", dest=SYSTEM_DROPIN)
    else:
        manager_op = files.file(name=f"Core dumps as the system has them: no {SYSTEM_DROPIN}", path=SYSTEM_DROPIN,
                                present=False)
    # systemd reads its manager settings (system.conf.d) again on daemon-reload.
    systemd.daemon_reload(name="systemd: reload its manager settings", _if=manager_op.did_change)


def _logins(settings: HostSettings) -> None:
    template(name=f"Login shells' umask {settings.login_umask}: {LOGIN_UMASK}", role="base", src="umask.sh.j2",
             dest=LOGIN_UMASK, mode="644", umask=settings.login_umask)
    if settings.login_banner:
        template(name=f"Login banner {ISSUE_NET}", role="base", src="issue.net.j2", dest=ISSUE_NET,
                 banner=settings.login_banner)


def _unattended_upgrades(settings: HostSettings, platform) -> None:
    template(
        name="Unattended upgrades: security updates only",
        role="base",
        src=f"{platform.family}/unattended-upgrades.conf.j2",
        dest=UNATTENDED_UPGRADES,
        origins=platform.security_origins,
        reboot=settings.unattended_reboot,
        reboot_time=settings.unattended_reboot_time,
        jinja_env_kwargs={"trim_blocks": True, "lstrip_blocks": True},
    )
    for timer in APT_TIMERS:
        systemd.service(
            name=f"Unattended upgrades: {timer} enabled and running", service=timer, running=True, enabled=True
        )


def _time_sync(container: str | None, time_daemons: list[str]) -> None:
    if time_daemons:
        # chrony and friends conflict with systemd-timesyncd: the clock is theirs.
        return
    # In a container systemd-timesyncd is skipped by its ConditionVirtualization=!container (the
    # machine running the container keeps the one clock), so there it can only be enabled.
    systemd.service(
        name="Time sync: systemd-timesyncd enabled" + ("" if container else " and running"),
        service="systemd-timesyncd.service",
        enabled=True,
        running=None if container else True,
    )


def _kernel(settings: HostSettings, container: str | None) -> None:
    keys = tuple(key for key, _, _ in SYSCTL)
    live = host.get_fact(Sysctl, keys=keys)
    apply, skipped = kernel_settings(
        container=container, arch=host.get_fact(Arch), present=set(live), ipv6_accept_ra=settings.ipv6_accept_ra,
        core_dumps=settings.core_dumps,
    )
    file_op = template(
        name=f"Kernel settings {SYSCTL_FILE}",
        role="base",
        src="sysctl.conf.j2",
        dest=SYSCTL_FILE,
        apply=apply,
        skipped=skipped,
        jinja_env_kwargs={"trim_blocks": True, "lstrip_blocks": True},
    )
    # Applying only when the file changed would miss a value changed by hand (sysctl -w): compare
    # the live values too, and apply when any differs.
    drifted = [key for key, value, _ in apply if live.get(key) != value]
    server.shell(
        name="Apply the kernel settings",
        commands=[f"sysctl -q -p {SYSCTL_FILE}"],
        **({} if drifted else {"_if": file_op.did_change}),
    )


def reload_sshd(dropin_op) -> None:
    server.shell(name="Reload sshd for its new drop-in", commands=[sshd_reload_command(platform_of(host))],
                 _if=dropin_op.did_change)
