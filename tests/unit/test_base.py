"""Role base on the controller: its settings rules, the kernel keys it picks, what it renders."""

import re
import shlex
import subprocess

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from openclaw_kit.platform import PLATFORMS
from openclaw_kit.settings import SettingsError, validate_hosts
from openclaw_kit.templates import TEMPLATES, render
from roles.base.debian import APT_LOCK_WAIT_SECONDS, RA_KEYS, SYSCTL, apt_suites, kernel_settings, sshd_reload_command
from roles.base.sshd import ISSUE_NET, SSHD_CANDIDATE, sshd_check_script, sshd_dropin
from tests.unit.fake_host import ENV, one_problem
from tests.verify.test_base import listener_problems, security_releases

GOOD = {
    "ssh_user": "root",
    "domain": "gw.example.com",
    "admin_email": "admin@example.com",
    "admin_cidrs": ["203.0.113.0/24"],
}
ALL_KEYS = [key for key, _, _ in SYSCTL]


def settings(**data):
    return validate_hosts({"gw1": {**GOOD, **data}}, ENV)["gw1"]


# --- settings -------------------------------------------------------------------------------------


def test_base_defaults():
    s = settings()
    assert (s.sshd_permit_root_login, s.sshd_allow_users, s.sshd_allow_groups, s.sshd_tcp_forwarding) == ("prohibit-password", [], [], "no")
    assert (s.ipv6_accept_ra, s.unattended_reboot, s.unattended_reboot_time) == (False, False, "04:00")


def test_allow_users_must_include_the_deploy_user():
    line = one_problem(GOOD, {"ssh_user": "deploy", "sshd_allow_users": ["alice", "bob"]}, "sshd_allow_users")
    assert "['alice', 'bob']" in line and "ssh_user 'deploy'" in line and "lock the deploy out" in line


def test_allow_users_needs_a_named_deploy_user():
    data = {k: v for k, v in GOOD.items() if k != "ssh_user"}
    with pytest.raises(SettingsError) as caught:
        validate_hosts({"gw1": {**data, "sshd_allow_users": ["alice"]}}, ENV)
    (line,) = caught.value.problems
    assert line.startswith("host gw1: sshd_allow_users = ['alice']: ") and "ssh_user" in line


def test_allow_users_with_the_deploy_user_is_fine():
    assert settings(ssh_user="deploy", sshd_allow_users=["alice", "deploy"]).sshd_allow_users == ["alice", "deploy"]
    assert settings(sshd_allow_users=["root"]).sshd_allow_users == ["root"]


def test_every_host_is_checked_against_its_own_ssh_user():
    with pytest.raises(SettingsError) as caught:
        validate_hosts({
            "gw1": {**GOOD, "ssh_user": "alice", "sshd_allow_users": ["alice"]},
            "gw2": {**GOOD, "ssh_user": "bob", "sshd_allow_users": ["alice"]},
        }, ENV)
    (line,) = caught.value.problems
    assert line.startswith("host gw2: sshd_allow_users = ['alice']:") and "'bob'" in line


@pytest.mark.parametrize("name", ["Alice", "al ice", "*", "ali*", "alice@203.0.113.7", "!root", "", "-x", "a" * 33])
def test_allow_lists_take_plain_names_only(name):
    for setting in ("sshd_allow_users", "sshd_allow_groups"):
        line = one_problem(GOOD, {setting: ["root", name]}, f"{setting}[1]")
        assert repr(name) in line and "plain user or group name" in line


def test_allow_groups_are_names_checked_on_the_host():
    # Group membership lives on the host: the deploy checks it there before touching sshd.
    assert settings(sshd_allow_groups=["sshusers", "adm"]).sshd_allow_groups == ["sshusers", "adm"]


@pytest.mark.parametrize("ssh_user", ["root", None])
def test_no_root_login_needs_a_non_root_deploy_user(ssh_user):
    data = {**GOOD, "sshd_permit_root_login": "no"}
    if ssh_user is None:
        del data["ssh_user"]
    with pytest.raises(SettingsError) as caught:
        validate_hosts({"gw1": data}, ENV)
    (line,) = caught.value.problems
    assert line.startswith("host gw1: sshd_permit_root_login = 'no': ") and "non-root ssh_user" in line


def test_no_root_login_with_a_non_root_deploy_user():
    assert settings(ssh_user="deploy", sshd_permit_root_login="no").sshd_permit_root_login == "no"


@pytest.mark.parametrize(("setting", "value"), [
    ("sshd_permit_root_login", "yes"),
    ("sshd_permit_root_login", "without-password"),
    ("sshd_tcp_forwarding", "yes"),
    ("sshd_tcp_forwarding", "remote"),
    ("ipv6_accept_ra", "yes"),
    ("unattended_reboot", "true"),
])
def test_choices(setting, value):
    assert repr(value) in one_problem(GOOD, {setting: value}, setting)


@pytest.mark.parametrize("time", ["4:00", "24:00", "04:60", "noon", "04:00:00"])
def test_reboot_time_is_hh_mm(time):
    assert "HH:MM" in one_problem(GOOD, {"unattended_reboot_time": time}, "unattended_reboot_time")


def test_unknown_base_setting_suggests_the_right_one():
    assert "did you mean sshd_allow_users?" in one_problem(GOOD, {"sshd_allowusers": ["root"]}, "sshd_allowusers")


# --- kernel settings -----------------------------------------------------------------------------


def test_a_vm_gets_the_full_set():
    apply, skipped = kernel_settings(container=None, arch="x86_64", present=set(ALL_KEYS), ipv6_accept_ra=False)
    assert [key for key, _, _ in apply] == ALL_KEYS and skipped == []
    values = {key: value for key, value, _ in apply}
    for key, value in {"net.ipv4.ip_forward": 0, "net.ipv4.conf.all.send_redirects": 0, "net.ipv4.tcp_syncookies": 1,
                       "kernel.kptr_restrict": 2, "kernel.dmesg_restrict": 1, "fs.suid_dumpable": 0, "kernel.sysrq": 0,
                       "kernel.randomize_va_space": 2, "kernel.unprivileged_bpf_disabled": 1, "net.core.bpf_jit_harden": 2,
                       "net.ipv6.conf.all.accept_ra": 0, "fs.protected_regular": 2}.items():
        assert values[key] == value, key
    assert len(set(ALL_KEYS)) == len(ALL_KEYS), "a key listed twice"


def test_a_container_gets_only_its_network_namespace():
    apply, skipped = kernel_settings(container="systemd-nspawn", arch="x86_64", present=None, ipv6_accept_ra=False)
    assert apply and all(key.startswith(("net.ipv4.", "net.ipv6.")) for key, _, _ in apply)
    skipped_keys = {key for key, _, _ in skipped}
    assert {"kernel.kptr_restrict", "fs.protected_symlinks", "vm.mmap_min_addr", "net.core.bpf_jit_harden"} <= skipped_keys
    assert all(key.split(".")[0] in ("kernel", "fs", "vm") or key.startswith("net.core.") for key in skipped_keys)
    assert all("systemd-nspawn container" in reason for _, _, reason in skipped)
    assert len(apply) + len(skipped) == len(SYSCTL)


def test_keys_this_kernel_lacks_and_other_architectures():
    present = set(ALL_KEYS) - {"kernel.yama.ptrace_scope"}
    apply, skipped = kernel_settings(container=None, arch="aarch64", present=present, ipv6_accept_ra=False)
    reasons = {key: reason for key, _, reason in skipped}
    assert reasons.keys() == {"kernel.yama.ptrace_scope", "vm.mmap_rnd_bits", "vm.mmap_rnd_compat_bits"}
    assert "no such key" in reasons["kernel.yama.ptrace_scope"] and "aarch64" in reasons["vm.mmap_rnd_bits"]


def test_ipv6_accept_ra_keeps_slaac_but_not_redirects_or_forwarding():
    apply, skipped = kernel_settings(container=None, arch="x86_64", present=None, ipv6_accept_ra=True)
    assert {key for key, _, _ in skipped} == RA_KEYS
    assert {"net.ipv6.conf.all.accept_ra", "net.ipv6.conf.default.autoconf"} <= RA_KEYS
    kept = {key for key, _, _ in apply}
    assert {"net.ipv6.conf.all.forwarding", "net.ipv6.conf.all.accept_redirects", "net.ipv6.conf.all.accept_source_route"} <= kept


def _render(src: str, **data) -> str:
    # Rendered as the role renders it (pyinfra's files.template with trim_blocks/lstrip_blocks).
    env = Environment(loader=FileSystemLoader(TEMPLATES / "base"), undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(src).render(**data)


def test_sysctl_file_sets_exactly_the_applied_keys_and_explains_the_rest():
    apply, skipped = kernel_settings(container="systemd-nspawn", arch="x86_64", present=None, ipv6_accept_ra=False)
    text = _render("sysctl.conf.j2", apply=apply, skipped=skipped)
    settings_lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", ";"))]
    assert settings_lines == [f"{key} = {value}" for key, value, _ in apply]
    for key, value, reason in skipped:
        assert f"# {key} = {value}: {reason}" in text


# --- unattended upgrades ---------------------------------------------------------------------------


APT_PLATFORMS = {key: platform for key, platform in PLATFORMS.items() if platform.package_manager == "apt"}


@pytest.mark.parametrize("key", APT_PLATFORMS)
@pytest.mark.parametrize("reboot", [False, True])
def test_unattended_upgrades_are_security_only(key, reboot):
    distribution = key[0]
    text = _render("debian/unattended-upgrades.conf.j2", origins=APT_PLATFORMS[key].security_origins, reboot=reboot,
                   reboot_time="03:30")
    # apt adds up list entries from every file: the package's own origins must be cleared first.
    assert "#clear Unattended-Upgrade::Origins-Pattern;" in text and "#clear Unattended-Upgrade::Allowed-Origins;" in text
    patterns = re.findall(r'^\s*"(origin=[^"]+)";', text, re.M)
    assert patterns and all(f"origin={distribution}" in p or p.startswith(f"origin={distribution}ESM") for p in patterns)
    assert all(re.search(r"security", p, re.I) for p in patterns), patterns
    assert f'Unattended-Upgrade::Automatic-Reboot "{str(reboot).lower()}";' in text
    assert 'Unattended-Upgrade::Automatic-Reboot-Time "03:30";' in text
    assert 'APT::Periodic::Unattended-Upgrade "1";' in text and 'APT::Periodic::Update-Package-Lists "1";' in text


def test_apt_lock_wait_file_is_read_by_apt(tmp_path):
    conf = tmp_path / "lock-wait.conf"
    conf.write_text(_render("debian/apt-lock-wait.conf.j2", seconds=APT_LOCK_WAIT_SECONDS))
    dump = subprocess.run(["apt-config", "-c", str(conf), "dump", "DPkg::Lock::Timeout"], capture_output=True,
                          text=True, check=True).stdout
    assert dump.strip() == f'DPkg::Lock::Timeout "{APT_LOCK_WAIT_SECONDS}";'


# --- sshd -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "socket_active", "expected"), [
    (("Debian", 12, None), True, ["reload-or-restart ssh.service"]),  # Debian's ssh.socket has a fixed port
    (("Debian", 13, None), False, ["reload-or-restart ssh.service"]),
    (("Ubuntu", 24, 4), True, ["is-active --quiet ssh.socket", "daemon-reload", "restart ssh.socket",
                               "reload-or-restart ssh.service"]),
    # An admin who went back to the plain ssh.service (Ubuntu's documented way) has no active socket.
    (("Ubuntu", 24, 4), False, ["is-active --quiet ssh.socket", "reload-or-restart ssh.service"]),
])
def test_sshd_reload_restarts_the_socket_only_where_the_platform_socket_activates_sshd(key, socket_active, expected,
                                                                                        tmp_path):
    """The reload command, run with a stand-in systemctl that logs its arguments."""
    log = tmp_path / "calls"
    (tmp_path / "systemctl").write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n[ "$1 $2" != "is-active --quiet" ] || exit {0 if socket_active else 3}\n')
    (tmp_path / "systemctl").chmod(0o755)
    subprocess.run(["sh", "-c", sshd_reload_command(PLATFORMS[key])], env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, check=True)
    assert log.read_text().splitlines() == expected


def directives(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_sshd_dropin_defaults():
    found = directives(sshd_dropin(settings()))
    keywords = [key.lower() for key, _ in found]
    assert len(keywords) == len(set(keywords)), "a keyword twice: only the first one counts"
    assert "match" not in keywords, "a Match block would swallow the rest of the sshd config"
    values = dict(found)
    assert values["Port"] == "22" and values["PermitRootLogin"] == "prohibit-password"
    assert (values["PasswordAuthentication"], values["KbdInteractiveAuthentication"], values["PermitEmptyPasswords"]) == ("no", "no", "no")
    assert (values["MaxAuthTries"], values["LoginGraceTime"], values["LogLevel"]) == ("3", "30", "VERBOSE")
    assert all(values[key] == "no" for key in ("AllowTcpForwarding", "AllowAgentForwarding", "AllowStreamLocalForwarding", "X11Forwarding", "PermitTunnel"))
    assert values["KexAlgorithms"] == "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org"
    assert "cbc" not in values["Ciphers"] and "sha1" not in values["MACs"] and all("etm@" in mac for mac in values["MACs"].split(","))
    assert "AllowUsers" not in values and "AllowGroups" not in values


def test_sshd_dropin_from_settings():
    values = dict(directives(sshd_dropin(settings(
        ssh_user="deploy", sshd_port=2222, sshd_permit_root_login="no", sshd_allow_users=["deploy", "alice"],
        sshd_allow_groups=["sshusers"], sshd_tcp_forwarding="local",
    ))))
    assert values["Port"] == "2222" and values["PermitRootLogin"] == "no"
    assert values["AllowUsers"] == "deploy alice" and values["AllowGroups"] == "sshusers"
    assert values["AllowTcpForwarding"] == "local" and values["AllowAgentForwarding"] == "no"


# --- the sshd check, run for real over a scratch /etc/ssh ------------------------------------------
# sshd itself is not installed here: a stand-in answers -t and -T from the files the script gives it
# (the sandbox tests run the same script against the real sshd).
FAKE_SSHD = r"""#!/bin/sh
# usage: sshd -t|-T -f CONFIG. Reads CONFIG and the files its Include globs name.
mode=$1 config=$3
files=$(sed -n 's/^Include //p' "$config")
all=$(cat "$config" $files)
if printf '%s\n' "$all" | grep -q '^MaxAuthTries three'; then echo "Bad configuration option: three" >&2; exit 255; fi
[ "$mode" = -t ] && exit 0
printf 'port %s\n' "$(printf '%s\n' "$all" | sed -n 's/^Port //p' | head -n 1)"
printf '%s\n' "$all" | grep -qx 'PasswordAuthentication no' && echo 'passwordauthentication no' || echo 'passwordauthentication yes'
"""


@pytest.fixture
def ssh_etc(tmp_path):
    etc = tmp_path / "ssh"
    (etc / "sshd_config.d").mkdir(parents=True)
    (etc / "sshd_config").write_text(f"Include {etc}/sshd_config.d/*.conf\nPort 22\n")
    sshd = tmp_path / "sshd"
    sshd.write_text(FAKE_SSHD)
    sshd.chmod(0o755)
    return etc, sshd


def run_sshd_check(etc, sshd, candidate: str, candidate_dir, **kwargs):
    candidate_dir.mkdir(exist_ok=True)
    (candidate_dir / "00-openclaw-kit.conf").write_text(candidate)
    script = sshd_check_script(sshd=str(sshd), dropin_dir=str(etc / "sshd_config.d"), main_config=str(etc / "sshd_config"), **kwargs)
    script = script.replace(shlex.quote(SSHD_CANDIDATE), shlex.quote(str(candidate_dir)))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)


def test_sshd_check_accepts_a_good_dropin_and_touches_nothing_live(ssh_etc, tmp_path):
    etc, sshd = ssh_etc
    (etc / "sshd_config.d" / "50-cloud.conf").write_text("PasswordAuthentication yes\n")
    before = sorted(p.name for p in (etc / "sshd_config.d").iterdir())
    run = run_sshd_check(etc, sshd, sshd_dropin(settings()), tmp_path / "candidate", port=22)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (etc / "sshd_config.d").iterdir()) == before, "the check never places the drop-in"


def test_sshd_check_rejects_with_sshds_words_and_removes_the_candidate(ssh_etc, tmp_path):
    etc, sshd = ssh_etc
    run = run_sshd_check(etc, sshd, sshd_dropin(settings()) + "MaxAuthTries three\n", tmp_path / "candidate", port=22)
    assert run.returncode == 1
    assert "sshd -t rejected the new" in run.stderr and "Bad configuration option" in run.stderr
    assert not (tmp_path / "candidate").exists() and not list((etc / "sshd_config.d").iterdir())


@pytest.mark.parametrize("case, expected", [
    ("port", "sshd would listen on port(s) 22  instead of 2222 only"),
    ("early file", "0-early.conf sorts before 00-openclaw-kit.conf"),
    ("not included", "the drop-in would not be in effect"),
    ("groups", "sshd_allow_groups: the deploy's ssh_user root is in none of no-such-group-kit"),
])
def test_sshd_check_refuses_what_would_lock_out_or_not_apply(ssh_etc, tmp_path, case, expected):
    etc, sshd = ssh_etc
    kwargs = {"port": 22}
    content = sshd_dropin(settings())
    if case == "port":
        kwargs["port"] = 2222  # the drop-in says 22, so sshd would not listen where the firewall opens
    elif case == "early file":
        (etc / "sshd_config.d" / "0-early.conf").write_text("PasswordAuthentication yes\n")
    elif case == "not included":
        (etc / "sshd_config").write_text("Port 22\n")
    else:
        kwargs.update(ssh_user="root", allow_groups=["no-such-group-kit"])
    run = run_sshd_check(etc, sshd, content, tmp_path / "candidate", **kwargs)
    assert run.returncode == 1 and expected in run.stderr, run.stderr


def test_sshd_dropin_tightens_sessions_and_keepalives_and_shows_the_banner():
    values = dict(directives(sshd_dropin(settings())))
    assert (values["MaxSessions"], values["ClientAliveCountMax"], values["Banner"]) == ("4", "2", "none")
    values = dict(directives(sshd_dropin(settings(sshd_max_sessions=2, sshd_client_alive_count_max=1,
                                                  login_banner="Authorised use only.\nActivity is logged.\n"))))
    assert (values["MaxSessions"], values["ClientAliveCountMax"], values["Banner"]) == ("2", "1", ISSUE_NET)


# --- host baseline ---------------------------------------------------------------------------------


def test_baseline_defaults():
    s = settings()
    assert (s.login_umask, s.core_dumps, s.cron_root_only, s.login_banner, s.auditd) == ("027", False, True, None, True)
    assert {"dccp", "sctp", "rds", "tipc", "usb-storage"} <= set(s.blocked_kernel_modules)


@pytest.mark.parametrize("umask", ["022", "0022", "27", "0777x", "abc", "828"])
def test_umask_must_deny_others_everything(umask):
    assert "denies others everything" in one_problem(GOOD, {"login_umask": umask}, "login_umask")


def test_umask_0077_is_fine():
    assert settings(login_umask="0077").login_umask == "0077"


@pytest.mark.parametrize("setting, value, rule", [
    ("sshd_max_sessions", 0, "greater than or equal to 1"),
    ("sshd_max_sessions", 11, "less than or equal to 10"),
    ("sshd_client_alive_count_max", 4, "less than or equal to 3"),
    ("blocked_kernel_modules[1]", ["dccp", "usb storage"], "kernel module name"),
    ("login_banner", "  \n", "some text"),
    ("login_banner", "Bell\x07", "printable"),
    ("login_banner", "x" * 2001, "2000"),
])
def test_baseline_values_are_checked(setting, value, rule):
    line = one_problem(GOOD, {setting.split("[")[0]: value}, setting)
    assert rule in line


def test_core_dumps_on_keeps_the_core_pattern_but_not_suid_dumps():
    apply, skipped = kernel_settings(container=None, arch="x86_64", present=None, ipv6_accept_ra=False, core_dumps=True)
    assert [(key, reason) for key, _, reason in skipped] == [("kernel.core_pattern", "core_dumps: true in settings")]
    assert ("fs.suid_dumpable", 0) in [(key, value) for key, value, _ in apply]
    apply, _ = kernel_settings(container=None, arch="x86_64", present=None, ipv6_accept_ra=False)
    assert ("kernel.core_pattern", "|/bin/false") in [(key, value) for key, value, _ in apply]


def test_modprobe_file_blocks_each_module():
    text = _render("modprobe.conf.j2", modules=["dccp", "usb-storage"])
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == ["install dccp /bin/false", "blacklist dccp", "install usb-storage /bin/false", "blacklist usb-storage"]


# --- apt sources -----------------------------------------------------------------------------------

SOURCES = """==> /etc/apt/sources.list
# deb http://deb.debian.org/debian bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm-updates main
==> /etc/apt/sources.list.d/ubuntu.sources
Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse

Types: deb
URIs: http://security.ubuntu.com/ubuntu/
Suites: noble-security
==> /etc/apt/sources.list.d/empty.list
"""


def test_apt_suites_reads_both_styles():
    assert apt_suites(SOURCES.splitlines()) == {
        "/etc/apt/sources.list": {"bookworm"},
        "/etc/apt/sources.list.d/ubuntu.sources": {"noble", "noble-updates", "noble-backports", "noble-security"},
        "/etc/apt/sources.list.d/empty.list": set(),
    }


@pytest.mark.parametrize("platform", [p for p in PLATFORMS.values() if p.package_manager == "apt"], ids=lambda p: p.label)
def test_the_security_source_the_kit_adds(platform):
    text = _render("debian/security.sources.j2", suite=f"{platform.codename}-security", uri=platform.security_uri,
                   components=platform.security_components, keyring=platform.archive_keyring)
    fields = dict(line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert fields["Types"] == "deb" and fields["Suites"] == f"{platform.codename}-security"
    assert fields["URIs"].startswith("http") and "main" in fields["Components"].split()
    assert fields["Signed-By"].startswith("/usr/share/keyrings/")
    assert apt_suites(["==> x", *text.splitlines()]) == {"x": {f"{platform.codename}-security"}}


# --- verify's checks on recorded output ------------------------------------------------------------

POLICY = """Package files:
 100 /var/lib/dpkg/status
     release a=now
 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     release v=12,o=Debian,a=stable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.12,o=Debian,a=stable,n=bookworm,l=Debian,c=main,b=amd64
     origin deb.debian.org
"""
DEBIAN_PATTERNS = ["origin=Debian,codename=${distro_codename}-security,label=Debian-Security",
                   "origin=Debian,codename=${distro_codename},label=Debian-Security"]


def test_security_releases_match_what_unattended_upgrades_allows():
    found = security_releases(POLICY, DEBIAN_PATTERNS, "bookworm")
    assert found == ["v=12,o=Debian,a=stable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64"]
    without = "\n".join(line for line in POLICY.splitlines() if "security" not in line)
    assert security_releases(without, DEBIAN_PATTERNS, "bookworm") == []
    assert security_releases(POLICY, DEBIAN_PATTERNS, "trixie") == []
    ubuntu = " 500 http://security.ubuntu.com/ubuntu noble-security/main amd64 Packages\n" \
             "     release v=24.04,o=Ubuntu,a=noble-security,n=noble,l=Ubuntu,c=main,b=amd64\n"
    assert security_releases(ubuntu, ["origin=Ubuntu,archive=${distro_codename}-security"], "noble")


SS = """tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=37,fd=3))
tcp LISTEN 0 128 [::]:22 [::]:* users:(("sshd",pid=37,fd=4))
tcp LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=1,fd=5))
tcp LISTEN 0 511 [::]:443 [::]:* users:(("nginx",pid=1,fd=6))
tcp LISTEN 0 511 127.0.0.1:18789 0.0.0.0:* users:(("openclaw-gatewa",pid=2,fd=64))
tcp LISTEN 0 511 [::1]:18789 [::]:* users:(("openclaw-gatewa",pid=2,fd=65))
udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=3,fd=13))
udp UNCONN 0 0 10.0.0.5%eth0:68 0.0.0.0:* users:(("systemd-network",pid=4,fd=20))
"""


def test_the_kits_listeners_and_tolerated_ones_pass():
    assert listener_problems(SS, settings()) == []


@pytest.mark.parametrize("line, why", [
    ('tcp LISTEN 0 20 127.0.0.1:25 0.0.0.0:* users:(("exim4",pid=9,fd=4))', "unexpected listener"),
    ('tcp LISTEN 0 511 0.0.0.0:18789 0.0.0.0:* users:(("openclaw-gatewa",pid=2,fd=66))', "unexpected listener"),
    ('udp UNCONN 0 0 0.0.0.0:51820 0.0.0.0:*', "unexpected listener"),
    ('udp UNCONN 0 0 0.0.0.0:53 0.0.0.0:*', "unexpected listener"),
])
def test_anything_else_listening_is_reported(line, why):
    problems = listener_problems(SS + line + "\n", settings())
    assert len(problems) == 1 and why in problems[0] and line.split()[4] in problems[0]


def test_listeners_from_settings():
    mesh = {"private_network": {"cidr": "10.99.0.0/24", "address": "10.99.0.1"}}
    assert listener_problems(SS + "udp UNCONN 0 0 0.0.0.0:51820 0.0.0.0:*\n", settings(**mesh)) == []
    moved = SS.replace(":22 ", ":2222 ").replace(":18789 ", ":18800 ")
    assert listener_problems(moved, settings(sshd_port=2222, gateway_port=18800)) == []
    assert listener_problems(moved, settings()) == [
        f"unexpected listener: {line}" for line in moved.splitlines() if ":2222 " in line or ":18800 " in line
    ] + ["nothing listens on tcp/22 (sshd)", "nothing listens on tcp/18789 (the gateway, behind nginx)"]


def test_login_shells_get_the_umask(tmp_path):
    script = tmp_path / "umask.sh"
    script.write_text(render("base", "umask.sh.j2", umask="027"))
    result = subprocess.run(["sh", "-c", f". {script} && umask"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0027"


def test_monitoring_listens_on_loopback_only_where_it_is_enabled():
    monitoring = {"monitoring": {"enabled": True, "webhook": {"url": "https://hooks.example.com/kit"}}}
    prometheus = 'tcp LISTEN 0 4096 127.0.0.1:9090 0.0.0.0:* users:(("prometheus",pid=7,fd=6))'
    assert listener_problems(SS + prometheus + "\n", settings(**monitoring)) == []
    assert listener_problems(SS + prometheus + "\n", settings()) == [f"unexpected listener: {prometheus}"]
    exposed = prometheus.replace("127.0.0.1:9090", "0.0.0.0:9090")
    assert listener_problems(SS + exposed + "\n", settings(**monitoring)) == [f"unexpected listener: {exposed}"]
