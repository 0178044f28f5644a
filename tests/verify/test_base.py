"""Role base: hostname, package downloads through the proxy, unattended security upgrades, time
sync, kernel hardening and the hardened sshd."""

import ipaddress
import re
import subprocess

import pytest

from openclaw_kit.platform import PLATFORMS
from roles.base.debian import (
    APT_LOCK_WAIT_SECONDS,
    APT_PROXY,
    APT_TIMERS,
    CORE_LIMITS,
    COREDUMP_DROPIN,
    MODPROBE_FILE,
    OTHER_TIME_DAEMONS,
    SYSCTL,
    SYSCTL_FILE,
    UNATTENDED_UPGRADES,
    kernel_settings,
)
from roles.base.sshd import ISSUE_NET, SSHD_CANDIDATE, SSHD_DROPIN
from roles.monitoring import PORTS as MONITORING_PORTS


def test_hostname_is_set(target):
    if not target.settings.hostname:
        pytest.skip("no hostname in settings: the kit leaves it alone")
    assert target.host.check_output("hostname") == target.settings.hostname


def test_apt_uses_the_proxy_from_settings(target):
    proxy_file = target.host.file(APT_PROXY)
    if target.settings.proxy:
        assert proxy_file.is_file and proxy_file.user == "root" and proxy_file.mode == 0o644
        assert f'Acquire::http::Proxy "{target.settings.proxy}";' in proxy_file.content_string
        # apt itself must see it, not only the file on disk.
        assert re.search(r'Acquire::http::Proxy "[^"]+"', target.host.check_output("apt-config dump Acquire::http::Proxy"))
    else:
        assert not proxy_file.exists


def test_apt_waits_for_dpkgs_lock(target):
    # Else a deploy or an admin's apt-get fails while unattended-upgrades is at work.
    dump = target.host.check_output("apt-config dump DPkg::Lock::Timeout")
    assert f'DPkg::Lock::Timeout "{APT_LOCK_WAIT_SECONDS}";' in dump, dump


# --- unattended upgrades and time sync -------------------------------------------------------------


def test_unattended_security_upgrades(target):
    assert target.host.package("unattended-upgrades").is_installed
    config = target.host.file(UNATTENDED_UPGRADES)
    assert config.is_file and config.user == "root" and config.mode == 0o644
    dump = target.host.check_output("apt-config dump")
    # What unattended-upgrade will use, after every file in apt.conf.d: security origins only.
    patterns = re.findall(r'^Unattended-Upgrade::Origins-Pattern:: "(.+)";$', dump, re.M)
    assert patterns and all(re.search(r"security", p, re.I) for p in patterns), patterns
    assert not re.findall(r'^Unattended-Upgrade::Allowed-Origins:: "(.+)";$', dump, re.M)
    assert 'APT::Periodic::Update-Package-Lists "1";' in dump
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    reboot = "true" if target.settings.unattended_reboot else "false"
    assert f'Unattended-Upgrade::Automatic-Reboot "{reboot}";' in dump
    assert f'Unattended-Upgrade::Automatic-Reboot-Time "{target.settings.unattended_reboot_time}";' in dump
    for timer in APT_TIMERS:
        assert target.host.service(timer).is_enabled, timer
        assert target.host.service(timer).is_running, timer


def security_releases(policy: str, patterns: list[str], codename: str) -> list[str]:
    """The releases in `apt-cache policy` output (its `release o=...,a=...` lines, i.e. sources apt
    has downloaded lists of) that one of unattended-upgrades' Origins-Pattern entries matches."""
    keys = {"origin": "o", "label": "l", "archive": "a", "suite": "a", "codename": "n", "component": "c",
            "site": None}
    found = []
    for line in re.findall(r"^\s*release (.+)$", policy, re.M):
        fields = dict(part.split("=", 1) for part in line.strip().split(",") if "=" in part)
        for pattern in patterns:
            wanted = dict(part.split("=", 1) for part in pattern.replace("${distro_codename}", codename).split(","))
            if all(keys.get(key) and fields.get(keys[key]) == value for key, value in wanted.items()):
                found.append(line.strip())
                break
    return found


def test_unattended_upgrades_find_the_security_suite(target):
    """The origins unattended-upgrades installs from are among the sources apt really has (and has
    fetched): without the security suite in apt's sources it would have nothing to install."""
    dump = target.host.check_output("apt-config dump")
    patterns = re.findall(r'^Unattended-Upgrade::Origins-Pattern:: "(.+)";$', dump, re.M)
    codename = target.host.check_output(". /etc/os-release && echo $VERSION_CODENAME")
    assert codename in {platform.codename for platform in PLATFORMS.values()}
    policy = target.host.check_output("apt-cache policy")
    found = security_releases(policy, patterns, codename)
    assert found, f"no source apt knows matches {patterns}:\n{policy}"
    assert all("security" in release.lower() for release in found), found


# --- what listens ------------------------------------------------------------------------------------

# Listeners a host may have besides the kit's own, each for a reason: (protocol, port, loopback only, why).
TOLERATED = [
    ("udp", 68, False, "a DHCP client (the provider's network configuration)"),
    ("udp", 546, False, "a DHCPv6 client"),
    ("udp", 53, True, "systemd-resolved's stub resolver (Ubuntu), on 127.0.0.53/54"),
    ("tcp", 53, True, "systemd-resolved's stub resolver (Ubuntu), on 127.0.0.53/54"),
    ("udp", 323, True, "chronyd's command port"),
]


def expected_listeners(settings) -> list[tuple[str, int, bool, str]]:
    """What may listen on a host with these settings: (protocol, port, loopback only, why)."""
    expected = [("tcp", settings.sshd_port, False, "sshd"), ("tcp", 80, False, "nginx"), ("tcp", 443, False, "nginx"),
                ("tcp", settings.gateway_port, True, "the gateway, behind nginx")]
    if settings.private_network:
        expected.append(("udp", settings.private_network.port, False, "WireGuard (private_network)"))
    for port in settings.private_allowed_ports:
        expected += [("tcp", port, False, "private_allowed_ports"), ("udp", port, False, "private_allowed_ports")]
    if settings.monitoring.enabled:
        expected += [("tcp", port, True, "role monitoring, loopback only") for port in MONITORING_PORTS]
    return expected + TOLERATED


def listener_problems(ss_output: str, settings) -> list[str]:
    """`ss -Htulnp` lines that no expected listener explains, and the kit's own that are missing."""
    allowed = expected_listeners(settings)
    seen, problems = set(), []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        protocol, local = fields[0], fields[4]
        address, _, port = local.rpartition(":")
        address = address.strip("[]").split("%", 1)[0]
        loopback = address not in ("*", "") and ipaddress.ip_address(address).is_loopback
        matches = [rule for rule in allowed if rule[0] == protocol and rule[1] == int(port) and (loopback or not rule[2])]
        if matches:
            seen.add((protocol, int(port)))
        else:
            problems.append(f"unexpected listener: {line.strip()}")
    problems += [f"nothing listens on {protocol}/{port} ({why})" for protocol, port, _, why in allowed[:4]
                 if (protocol, port) not in seen]
    return problems


def test_only_the_expected_sockets_listen(target):
    """sshd, nginx on 80/443 and the gateway on loopback; no MTA, nothing nobody asked for."""
    problems = listener_problems(target.host.check_output("ss -Htulnp"), target.settings)
    assert problems == []


def test_time_sync(target):
    others = [name for name in OTHER_TIME_DAEMONS if target.host.package(name).is_installed]
    if others:
        pytest.skip(f"{', '.join(others)} keeps the clock: the kit leaves it alone")
    assert target.host.package("systemd-timesyncd").is_installed
    timesyncd = target.host.service("systemd-timesyncd")
    assert timesyncd.is_enabled
    container = target.host.run("systemd-detect-virt --container").stdout.strip()
    if container in ("", "none"):
        assert timesyncd.is_running
    # In a container, ConditionVirtualization=!container skips it: enabled is all there can be.


# --- kernel ------------------------------------------------------------------------------------------


def test_kernel_settings_are_live(target):
    container = target.host.run("systemd-detect-virt --container").stdout.strip()
    container = None if container in ("", "none") else container
    # Every live value in one round trip, read from /proc/sys itself (keys this kernel lacks: absent).
    paths = " ".join(f"/proc/sys/{key.replace('.', '/')}" for key, _, _ in SYSCTL)
    output = target.host.check_output(f'for f in {paths}; do [ -e "$f" ] && printf "%s=%s\\n" "$f" "$(cat "$f")"; done; true')
    live = {path.removeprefix("/proc/sys/").replace("/", "."): value for path, _, value in (line.partition("=") for line in output.splitlines())}
    apply, skipped = kernel_settings(container=container, arch=target.host.check_output("uname -m"), present=set(live), ipv6_accept_ra=target.settings.ipv6_accept_ra,
                                     core_dumps=target.settings.core_dumps)
    assert apply
    sysctl_file = target.host.file(SYSCTL_FILE)
    assert sysctl_file.is_file and sysctl_file.user == "root" and sysctl_file.mode == 0o644
    lines = set(sysctl_file.content_string.splitlines())
    assert [key for key, value, _ in apply if f"{key} = {value}" not in lines] == []
    wrong = {key: (live[key], value) for key, value, _ in apply if live[key] != str(value)}
    assert wrong == {}, "live values differ from the kit's (live, wanted)"
    for key, value, reason in skipped:
        assert f"# {key} = {value}: {reason}" in lines, key


# --- sshd --------------------------------------------------------------------------------------------

MODERN = {
    "kexalgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org",
    "ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr",
    "macs": "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com",
}


def effective_sshd(target) -> dict[str, list[str]]:
    config: dict[str, list[str]] = {}
    for line in target.host.check_output("sshd -T").splitlines():
        key, _, value = line.partition(" ")
        config.setdefault(key, []).append(value)
    return config


def test_sshd_effective_config_is_hardened(target):
    s = target.settings
    config = effective_sshd(target)
    wanted = {
        "port": [str(s.sshd_port)],
        # sshd -T spells prohibit-password by its older name.
        "permitrootlogin": ["without-password" if s.sshd_permit_root_login == "prohibit-password" else "no"],
        "authenticationmethods": ["publickey"],
        "pubkeyauthentication": ["yes"],
        "passwordauthentication": ["no"],
        "kbdinteractiveauthentication": ["no"],
        "permitemptypasswords": ["no"],
        "hostbasedauthentication": ["no"],
        "kerberosauthentication": ["no"],
        "kerberosorlocalpasswd": ["no"],
        "gssapiauthentication": ["no"],
        "ignorerhosts": ["yes"],
        "strictmodes": ["yes"],
        "maxauthtries": ["3"],
        "logingracetime": ["30"],
        "clientaliveinterval": ["300"],
        "clientalivecountmax": [str(s.sshd_client_alive_count_max)],
        "allowtcpforwarding": [s.sshd_tcp_forwarding],
        "allowagentforwarding": ["no"],
        "allowstreamlocalforwarding": ["no"],
        "x11forwarding": ["no"],
        "x11uselocalhost": ["yes"],
        "permittunnel": ["no"],
        "gatewayports": ["no"],
        "permituserenvironment": ["no"],
        "loglevel": ["VERBOSE"],
        "syslogfacility": ["AUTH"],
        "maxsessions": [str(s.sshd_max_sessions)],
        "banner": [ISSUE_NET if s.login_banner else "none"],
        "maxstartups": ["10:30:100"],
        "tcpkeepalive": ["no"],
        **{key: [value] for key, value in MODERN.items()},
    }
    assert {key: config.get(key) for key in wanted} == wanted
    assert config.get("allowusers", []) == s.sshd_allow_users
    assert config.get("allowgroups", []) == s.sshd_allow_groups


def test_sshd_dropin_is_root_owned_and_read_first(target):
    dropin = target.host.file(SSHD_DROPIN)
    assert dropin.is_file and dropin.user == "root" and dropin.group == "root" and dropin.mode == 0o644
    # The first value sshd reads wins: nothing in sshd_config.d may sort before the kit's drop-in.
    names = target.host.check_output("ls -1 /etc/ssh/sshd_config.d/ | grep '[.]conf$' | LC_ALL=C sort").split()
    assert names[0] == SSHD_DROPIN.rsplit("/", 1)[1]
    # Nothing left over from checking it.
    assert not target.host.file(SSHD_CANDIDATE).exists
    assert target.host.service("ssh").is_running


def test_password_logins_are_refused_from_here(target):
    """A login with passwords only (no key offered) is refused: sshd offers nothing but publickey."""
    data = target.data  # the inventory's own address, port, user and known_hosts
    options = {"UserKnownHostsFile": data.get("ssh_known_hosts_file"), "StrictHostKeyChecking": data.get("ssh_strict_host_key_checking")}
    command = ["ssh", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
               "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", str(data.get("ssh_port") or 22),
               *[f"-o{key}={value}" for key, value in options.items() if value],
               f"{data.get('ssh_user') or 'root'}@{data.get('ssh_hostname') or target.name}", "true"]
    attempt = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert attempt.returncode == 255
    assert "Permission denied (publickey)." in attempt.stderr, attempt.stderr


# --- host baseline ------------------------------------------------------------------------------------


def test_login_umask(target):
    # Login shells read /etc/profile.d; the deploy's own non-login commands keep the system's umask.
    assert int(target.host.check_output("bash -lc umask"), 8) == int(target.settings.login_umask, 8)


def test_no_core_dumps(target):
    if target.settings.core_dumps:
        pytest.skip("core_dumps: true in settings")
    assert "* hard core 0" in target.host.file(CORE_LIMITS).content_string.splitlines()
    # Services: systemd's default for every unit (and so for the gateway).
    assert target.host.check_output("systemctl show --property DefaultLimitCORE") == "DefaultLimitCORE=0"
    assert target.host.check_output("systemctl show --property LimitCORE openclaw-gateway.service") == "LimitCORE=0"
    if target.host.package("systemd-coredump").is_installed:
        assert target.host.file(COREDUMP_DROPIN).is_file
        assert "Storage=none" in target.host.check_output("systemd-analyze cat-config systemd/coredump.conf").splitlines()
    # fs.suid_dumpable and kernel.core_pattern: test_kernel_settings_are_live (where the kernel lets them be set).


def test_blocked_kernel_modules(target):
    modules = target.settings.blocked_kernel_modules
    if not modules:
        assert not target.host.file(MODPROBE_FILE).exists
        return
    lines = target.host.file(MODPROBE_FILE).content_string.splitlines()
    assert [module for module in modules if f"install {module} /bin/false" not in lines] == []
    if target.host.exists("modprobe"):  # containers often have no kmod at all
        for module in modules:
            assert "install /bin/false" in target.host.check_output(f"modprobe -n -v {module} 2>&1 || true"), module
    loaded = target.host.check_output("cat /proc/modules 2>/dev/null | cut -d' ' -f1 || true").split()
    assert [module for module in modules if module.replace("-", "_") in loaded] == []


def test_login_banner(target):
    banner = target.settings.login_banner
    if not banner:  # nothing more to check: sshd's "banner none" is in test_sshd_effective_config_is_hardened
        return
    issue = target.host.file(ISSUE_NET)
    assert issue.mode == 0o644 and issue.content_string.rstrip("\n") == banner.rstrip("\n")


def test_the_system_is_running_not_degraded(target):
    # A failed unit anywhere (the kit's or not) makes it "degraded": monitoring then alerts on every host.
    state = target.host.run("systemctl is-system-running").stdout.strip()
    failed = target.host.run("systemctl list-units --failed --plain --no-legend").stdout.strip()
    assert state == "running", f"systemctl is-system-running: {state}; failed units: {failed or 'none'}"
