"""Role base on the controller: its settings rules, the kernel keys it picks, what it renders."""

import re
import shlex
import subprocess

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from openclaw_kit.settings import SettingsError, validate_hosts
from openclaw_kit.templates import TEMPLATES
from roles.base import RA_KEYS, SSHD_CANDIDATE, SYSCTL, kernel_settings, sshd_check_script, sshd_dropin
from tests.unit.fake_host import ENV, one_problem

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


@pytest.mark.parametrize("distribution", ["Debian", "Ubuntu"])
@pytest.mark.parametrize("reboot", [False, True])
def test_unattended_upgrades_are_security_only(distribution, reboot):
    text = _render("debian/unattended-upgrades.conf.j2", distribution=distribution, reboot=reboot, reboot_time="03:30")
    # apt adds up list entries from every file: the package's own origins must be cleared first.
    assert "#clear Unattended-Upgrade::Origins-Pattern;" in text and "#clear Unattended-Upgrade::Allowed-Origins;" in text
    patterns = re.findall(r'^\s*"(origin=[^"]+)";', text, re.M)
    assert patterns and all(f"origin={distribution}" in p or p.startswith(f"origin={distribution}ESM") for p in patterns)
    assert all(re.search(r"security", p, re.I) for p in patterns), patterns
    assert f'Unattended-Upgrade::Automatic-Reboot "{str(reboot).lower()}";' in text
    assert 'Unattended-Upgrade::Automatic-Reboot-Time "03:30";' in text
    assert 'APT::Periodic::Unattended-Upgrade "1";' in text and 'APT::Periodic::Update-Package-Lists "1";' in text


# --- sshd -----------------------------------------------------------------------------------------


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
