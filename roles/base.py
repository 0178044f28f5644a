"""Role base: the host itself.

Hostname, package downloads through the configured proxy, unattended security upgrades, time sync,
kernel hardening (sysctl) and a hardened sshd. The sshd drop-in is checked with `sshd -t` on the
host before sshd is reloaded; a drop-in sshd rejects never stays in place.
"""

from __future__ import annotations

import hashlib
import io
import shlex

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.facts.files import File, Sha256File
from pyinfra.facts.server import Arch, LinuxDistribution, Sysctl
from pyinfra.operations import files, server, systemd

from openclaw_kit.packages import install_missing, installed_packages
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render, template

APT_PROXY = "/etc/apt/apt.conf.d/80openclaw-kit-proxy"
PROXY_CA = "/usr/local/share/ca-certificates/openclaw-kit-proxy.crt"
# After the package's own 50unattended-upgrades (and 20auto-upgrades), so its values win.
UNATTENDED_UPGRADES = "/etc/apt/apt.conf.d/52openclaw-kit-unattended-upgrades"
APT_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")
SYSCTL_FILE = "/etc/sysctl.d/90-openclaw-kit.conf"
# sshd_config includes sshd_config.d/*.conf first and the first value read wins: sort first.
SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-openclaw-kit.conf"
# Outside sshd_config.d, so sshd never reads them: the drop-in as uploaded, and the one it replaces.
SSHD_CANDIDATE = "/etc/ssh/openclaw-kit-sshd.candidate"
SSHD_PREVIOUS = "/etc/ssh/openclaw-kit-sshd.previous"
SSHD = "/usr/sbin/sshd"
PACKAGES = ["ca-certificates", "procps", "unattended-upgrades"]
# Another time-sync daemon already keeps the clock: installing systemd-timesyncd would remove it.
OTHER_TIME_DAEMONS = ("chrony", "ntp", "ntpsec", "openntpd")

# The bar: dev-sec linux-baseline's sysctl controls and the sysctl set of dev-sec's Ansible
# os_hardening role, plus kernel.dmesg_restrict, kernel.unprivileged_bpf_disabled and
# net.core.bpf_jit_harden. Deliberately not set: kernel.modules_disabled (one-way; nftables loads
# its modules on demand), net.ipv4.tcp_timestamps=0 (Linux randomises timestamps per connection
# since 4.10, so they no longer leak uptime; turning them off loses PAWS and RTT measurement),
# net.ipv6.conf.all.disable_ipv6 (hosts are reached over IPv6 too).
SYSCTL: list[tuple[str, int, str]] = [
    # (key, value, why)
    ("fs.protected_hardlinks", 1, "No hard links to files the user does not own (TOCTOU /tmp races)."),
    ("fs.protected_symlinks", 1, "Symlinks in sticky world-writable directories are followed only by their owner."),
    ("fs.protected_fifos", 1, "No opening others' FIFOs in sticky world-writable directories with O_CREAT."),
    ("fs.protected_regular", 2, "No opening others' regular files in sticky directories with O_CREAT."),
    ("fs.suid_dumpable", 0, "No core dumps of setuid programs (they may hold secrets)."),
    ("kernel.core_uses_pid", 1, "Core file names carry the PID."),
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
# The maximum mmap entropy differs per architecture and kernel configuration.
X86_64_ONLY = frozenset({"vm.mmap_rnd_bits", "vm.mmap_rnd_compat_bits"})


class Container(FactBase):
    """The container this host runs in (systemd-detect-virt --container), or None on a VM or bare metal."""

    def command(self):
        return "systemd-detect-virt --container || true"

    def process(self, output):
        found = "".join(output).strip()
        return None if found in ("", "none") else found


def kernel_settings(*, container: str | None, arch: str, present: set[str] | None, ipv6_accept_ra: bool):
    """The sysctl keys to set on this host as (key, value, why), and those skipped as (key, value, reason).

    Only facts that cannot change during a run decide: the container, the architecture, the keys
    this kernel has (present=None: assume all), and settings.
    """
    apply, skipped = [], []
    for key, value, why in SYSCTL:
        if container and not key.startswith(("net.ipv4.", "net.ipv6.")):
            # A container has its own network namespace (net.ipv4/ipv6 are per namespace); every
            # other key belongs to the shared kernel: read-only in here (or absent, like net.core.*).
            reason = f"kernel-wide, read-only inside this {container} container: set it on the machine that runs the container"
        elif present is not None and key not in present:
            reason = "this kernel has no such key"
        elif key in X86_64_ONLY and arch not in ("x86_64", "amd64"):
            reason = f"the maximum depends on the architecture; the kernel default is kept on {arch}"
        elif ipv6_accept_ra and key in RA_KEYS:
            reason = "ipv6_accept_ra: true in settings (router advertisements and SLAAC stay on)"
        else:
            apply.append((key, value, why))
            continue
        skipped.append((key, value, reason))
    return apply, skipped


def sshd_dropin(settings: HostSettings) -> str:
    return render(
        "base", "sshd.conf.j2",
        port=settings.sshd_port,
        permit_root_login=settings.sshd_permit_root_login,
        allow_users=settings.sshd_allow_users,
        allow_groups=settings.sshd_allow_groups,
        tcp_forwarding=settings.sshd_tcp_forwarding,
    )


def sshd_install_command(*, port: int, ssh_user: str | None = None, allow_groups: list[str] = ()) -> str:
    """
    Shell that moves the uploaded candidate into place only if sshd accepts the result.

    The previous drop-in is kept aside; if `sshd -t` fails, or `sshd -T` shows that the drop-in is
    not in effect, it goes back and the command fails with sshd's message. The running sshd never
    sees a rejected file: it reads its config only when reloaded, which happens after this succeeds.
    """
    q = shlex.quote
    lines = [
        f"candidate={q(SSHD_CANDIDATE)} dropin={q(SSHD_DROPIN)} previous={q(SSHD_PREVIOUS)}",
        "fail() { printf '%s\\n' \"$*\" >&2; exit 1; }",
        'restore() { if [ -e "$previous" ]; then mv -f "$previous" "$dropin"; else rm -f "$dropin"; fi; rm -f "$candidate"; }',
        '[ -f "$candidate" ] || fail "no sshd drop-in candidate at $candidate"',
    ]
    if allow_groups:
        user = ssh_user or "root"
        groups = " ".join(f"-e {q(group)}" for group in allow_groups)
        message = f"sshd_allow_groups: the deploy's ssh_user {user} is in none of {', '.join(allow_groups)} on this host; sshd would lock the deploy out (the drop-in was not changed)"
        lines.append(f"id -nG {q(user)} 2>/dev/null | tr ' ' '\\n' | grep -qxF {groups} || {{ rm -f \"$candidate\"; fail {q(message)}; }}")
    lines += [
        "install -d -m 755 -o root -g root /etc/ssh/sshd_config.d",
        # sshd reads the Include glob in C-locale order and keeps the first value: nothing may come before.
        'first=$(cd /etc/ssh/sshd_config.d && ls -1 -- *.conf 2>/dev/null | LC_ALL=C sort | head -n 1)',
        '[ -z "$first" ] || [ "$first" = "${dropin##*/}" ] || [ "$(printf \'%s\\n\' "$first" "${dropin##*/}" | LC_ALL=C sort | head -n 1)" = "${dropin##*/}" ] || '
        '{ rm -f "$candidate"; fail "/etc/ssh/sshd_config.d/$first sorts before ${dropin##*/}, so its values would win over the kit\'s: rename or remove it (the drop-in was not changed)"; }',
        'rm -f "$previous"',
        'if [ -e "$dropin" ]; then cp -p "$dropin" "$previous" || fail "could not keep a copy of $dropin"; fi',
        'install -m 644 -o root -g root "$candidate" "$dropin.new" && mv -f "$dropin.new" "$dropin" || { rm -f "$dropin.new"; fail "could not place $dropin"; }',
        f'if ! out=$({SSHD} -t 2>&1); then restore; fail "sshd -t rejected the new $dropin; the previous one is back in place and sshd keeps running with it: $out"; fi',
        f'effective=$({SSHD} -T 2>&1) || {{ restore; fail "sshd -T failed: $effective"; }}',
        "ports=$(printf '%s\\n' \"$effective\" | sed -n 's/^port //p' | tr '\\n' ' ')",
        f'[ "$ports" = "{int(port)} " ] || {{ restore; fail "sshd would listen on port(s) $ports instead of {int(port)} only: does /etc/ssh/sshd_config set a Port of its own? The previous drop-in is back in place"; }}',
        "printf '%s\\n' \"$effective\" | grep -qx 'passwordauthentication no' || "
        '{ restore; fail "the drop-in is not in effect (sshd -T still allows passwords): does /etc/ssh/sshd_config Include /etc/ssh/sshd_config.d/*.conf at its top? The previous drop-in is back in place"; }',
        'rm -f "$previous" "$candidate"',
    ]
    return "\n".join(lines)


# Ubuntu 24.04 starts sshd from ssh.socket, whose port comes from sshd_config through a generator:
# a new Port needs the generator re-run and the socket restarted (Ubuntu's documented procedure).
SSHD_RELOAD = (
    "if systemctl is-active --quiet ssh.socket; then systemctl daemon-reload && systemctl restart ssh.socket; fi; "
    "systemctl reload-or-restart ssh.service"
)


@deploy("base")
def base(settings: HostSettings):
    if settings.hostname:
        server.hostname(name=f"Set hostname {settings.hostname}", hostname=settings.hostname)

    if settings.proxy:
        template(name="Send apt through the proxy", role="base", src="apt-proxy.conf.j2", dest=APT_PROXY, proxy=settings.proxy)
    else:
        files.file(name="No apt proxy", path=APT_PROXY, present=False)

    installed = installed_packages()
    time_daemons = [name for name in OTHER_TIME_DAEMONS if name in installed]
    install_missing(PACKAGES + ([] if time_daemons else ["systemd-timesyncd"]))

    if settings.proxy_ca_file:
        ca_op = files.put(name="Trust the proxy's CA", src=settings.proxy_ca_file, dest=PROXY_CA, mode="644")
        server.shell(name="Rebuild the CA store with the proxy's CA", commands=["update-ca-certificates"], _if=ca_op.did_change)
    else:
        files.file(name="No proxy CA", path=PROXY_CA, present=False)

    container = host.get_fact(Container)
    _unattended_upgrades(settings)
    _time_sync(container, time_daemons)
    _kernel(settings, container)
    _sshd(settings)


def _unattended_upgrades(settings: HostSettings) -> None:
    template(
        name="Unattended upgrades: security updates only", role="base", src="unattended-upgrades.conf.j2", dest=UNATTENDED_UPGRADES,
        distribution=host.get_fact(LinuxDistribution)["name"], reboot=settings.unattended_reboot, reboot_time=settings.unattended_reboot_time,
        jinja_env_kwargs={"trim_blocks": True, "lstrip_blocks": True},
    )
    for timer in APT_TIMERS:
        systemd.service(name=f"Unattended upgrades: {timer} enabled and running", service=timer, running=True, enabled=True)


def _time_sync(container: str | None, time_daemons: list[str]) -> None:
    if time_daemons:
        # chrony and friends conflict with systemd-timesyncd: the clock is theirs.
        return
    # In a container systemd-timesyncd is skipped by its ConditionVirtualization=!container (the
    # machine running the container keeps the one clock), so there it can only be enabled.
    systemd.service(
        name="Time sync: systemd-timesyncd enabled" + ("" if container else " and running"),
        service="systemd-timesyncd.service", enabled=True, running=None if container else True,
    )


def _kernel(settings: HostSettings, container: str | None) -> None:
    keys = tuple(key for key, _, _ in SYSCTL)
    live = host.get_fact(Sysctl, keys=keys)
    apply, skipped = kernel_settings(container=container, arch=host.get_fact(Arch), present=set(live), ipv6_accept_ra=settings.ipv6_accept_ra)
    file_op = template(
        name=f"Kernel settings {SYSCTL_FILE}", role="base", src="sysctl.conf.j2", dest=SYSCTL_FILE,
        apply=apply, skipped=skipped, jinja_env_kwargs={"trim_blocks": True, "lstrip_blocks": True},
    )
    # Applying only when the file changed would miss a value changed by hand (sysctl -w): compare
    # the live values too, and apply when any differs.
    drifted = [key for key, value, _ in apply if live.get(key) != value]
    server.shell(
        name="Apply the kernel settings",
        commands=[f"sysctl -q -p {SYSCTL_FILE}"],
        **({} if drifted else {"_if": file_op.did_change}),
    )


def _sshd(settings: HostSettings) -> None:
    content = sshd_dropin(settings)
    current = host.get_fact(File, path=SSHD_DROPIN)
    in_place = (
        current
        and (current["user"], current["group"], current["mode"]) == ("root", "root", 644)
        and host.get_fact(Sha256File, path=SSHD_DROPIN) == hashlib.sha256(content.encode()).hexdigest()
    )
    if in_place:
        return
    files.put(name="sshd drop-in: upload the candidate", src=io.StringIO(content), dest=SSHD_CANDIDATE, user="root", group="root", mode="600")
    install_op = server.shell(
        name=f"sshd drop-in: check it with sshd -t, then put it in place at {SSHD_DROPIN}",
        commands=[sshd_install_command(port=settings.sshd_port, ssh_user=host.data.get("ssh_user"), allow_groups=settings.sshd_allow_groups)],
    )
    server.shell(name="Reload sshd for its new drop-in", commands=[SSHD_RELOAD], _if=install_op.did_change)
