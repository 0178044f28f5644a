"""Role fail2ban: the rendered jail, action and filters; the real fail2ban-client -t / -d and
fail2ban-regex of this machine on them (when fail2ban is installed); the guard that keeps a
rejected configuration away from the live files; the fail2ban settings' rules."""

from __future__ import annotations

import ast
import configparser
import datetime
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from openclaw_kit.settings import HostSettings, validate_hosts
from roles.fail2ban import ACTION, JAIL_FILE, NGINX_JAILS, REJECTED, activation_commands, config_files
from roles.firewall.nftables import ruleset
from tests.unit.fake_host import ENV, one_problem

GOOD = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24", "2001:db8::/48"]}
DEBIAN_ETC = Path("/etc/fail2ban")
NO_FAIL2BAN = "fail2ban is not installed (apt-get install fail2ban; ./kit does): the real checks need it"
HAS_FAIL2BAN = shutil.which("fail2ban-client") is not None and (DEBIAN_ETC / "jail.conf").is_file()


def settings(**data) -> HostSettings:
    return validate_hosts({"gw1": {**GOOD, **data}}, ENV)["gw1"]


def parsed(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def confdir(tmp_path: Path, files: dict[str, str]) -> Path:
    """A copy of this machine's Debian /etc/fail2ban with the kit's files in it."""
    target = tmp_path / "fail2ban"
    shutil.copytree(DEBIAN_ETC, target, symlinks=True)
    for relative, content in files.items():
        (target / relative).write_text(content)
    return target


def access_line(address: str, status: int, uri: str = "/", agent: str = "curl/8") -> str:
    """A line as nginx writes it with the kit's log_format kit_json (escape=json)."""
    now = datetime.datetime.now(datetime.UTC).astimezone().isoformat(timespec="seconds")

    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"')

    return (f'{{"time_iso8601":"{now}","remote_addr":"{address}","host":"gw.example.com","request_method":"GET",'
            f'"request_uri":"{esc(uri)}","status":{status},"body_bytes_sent":0,"request_time":0.001,'
            f'"http_user_agent":"{esc(agent)}","upstream_status":"{status}","ssl_protocol":"TLSv1.3"}}')


# --- rendering -----------------------------------------------------------------------------------


def test_jail_values_come_from_settings():
    s = settings(fail2ban_bantime_seconds=7200, fail2ban_findtime_seconds=300, fail2ban_maxretry=4)
    jail = parsed(config_files(s)[JAIL_FILE])
    default = jail["DEFAULT"]
    assert (default["bantime"], default["findtime"], default["maxretry"]) == ("7200", "300", "4")
    assert default["banaction"] == default["banaction_allports"] == ACTION
    assert jail.sections() == ["sshd", *[j["name"] for j in NGINX_JAILS]]
    assert jail["sshd"]["enabled"] == "true" and jail["sshd"]["backend"] == "systemd"
    for nginx_jail in NGINX_JAILS:
        section = jail[nginx_jail["name"]]
        assert section["logpath"] == "/var/log/nginx/openclaw-kit-access.log" and section["filter"] == nginx_jail["name"]


def test_defaults_are_sane():
    s = settings()
    assert (s.fail2ban_bantime_seconds, s.fail2ban_findtime_seconds, s.fail2ban_maxretry) == (3600, 600, 5)
    assert s.ssh_cidrs == []


def test_ignoreip_is_loopback_and_admin_cidrs_only():
    s = settings(ssh_cidrs=["198.51.100.0/24"])
    ignored = parsed(config_files(s)[JAIL_FILE])["DEFAULT"]["ignoreip"].split()
    assert ignored == ["127.0.0.0/8", "::1", "203.0.113.0/24", "2001:db8::/48"]
    assert "198.51.100.0/24" not in ignored, "ssh_cidrs can be banned"


def test_action_bans_into_the_kit_sets_for_v4_and_v6_and_never_makes_tables():
    action = parsed(config_files(settings())[f"action.d/{ACTION}.conf"])
    assert action["Init"]["kit_set"] == "banned_v4"
    assert action["Init?family=inet6"]["kit_set"] == "banned_v6"
    definition = action["Definition"]
    assert "nft add element inet openclaw_kit <kit_set> \\{ <ip> timeout" in definition["actionban"]
    assert definition["actionunban"].startswith("nft delete element inet openclaw_kit <kit_set> ")
    assert definition["actionstart"] == definition["actionstop"] == ""
    assert "table" not in " ".join(definition[key] for key in ("actionban", "actionunban")).replace("inet openclaw_kit", "")
    # The sets the action fills are the ones the firewall's input chain drops.
    rules = ruleset(settings())
    assert "ip saddr @banned_v4 drop" in rules and "ip6 saddr @banned_v6 drop" in rules


def test_activation_checks_a_copy_before_promoting():
    commands = activation_commands(["jail.d/openclaw-kit.conf", "filter.d/x.conf"])
    check = next(i for i, c in enumerate(commands) if "fail2ban-client -c" in c and " -t" in c)
    promote = next(i for i, c in enumerate(commands) if "mv -f /etc/fail2ban/jail.d/openclaw-kit.conf.openclaw-kit-new" in c)
    assert check < promote
    assert "exit 1" in commands[check] and REJECTED in commands[check]


# --- the real fail2ban on these files ---------------------------------------------------------------


@pytest.mark.skipif(not HAS_FAIL2BAN, reason=NO_FAIL2BAN)
def test_fail2ban_accepts_the_configuration_and_the_kit_wins_over_debian(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("")
    etc = confdir(tmp_path, config_files(settings(fail2ban_bantime_seconds=120), access_log=str(log)))
    assert (etc / "jail.d" / "defaults-debian.conf").is_file(), "Debian's [sshd] is still there, and loses"
    test = subprocess.run(["fail2ban-client", "-c", str(etc), "-t"], capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr
    dump = subprocess.run(["fail2ban-client", "-c", str(etc), "-d"], capture_output=True, text=True, check=True).stdout
    jails = [line for line in dump.splitlines() if line.startswith("['add', ")]
    assert jails == ["['add', 'sshd', 'systemd']", *[f"['add', '{j['name']}', 'polling']" for j in NGINX_JAILS]]
    for name in ["sshd", *[j["name"] for j in NGINX_JAILS]]:
        assert f"['set', '{name}', 'addaction', '{ACTION}']" in dump
        assert f"['set', '{name}', 'bantime', '120']" in dump
        assert f"['set', '{name}', 'addignoreip', '127.0.0.0/8', '::1', '203.0.113.0/24', '2001:db8::/48']" in dump
    assert "iptables" not in dump and "f2b-table" not in dump, "no action of fail2ban's own"


@pytest.mark.skipif(not HAS_FAIL2BAN, reason=NO_FAIL2BAN)
def test_fail2ban_client_t_rejects_a_broken_configuration(tmp_path):
    # The guard in activation_commands relies on -t failing.
    log = tmp_path / "access.log"
    log.write_text("")
    files = config_files(settings(), access_log=str(log))
    files[JAIL_FILE] = files[JAIL_FILE].replace(f"filter = {NGINX_JAILS[0]['name']}", "filter = no-such-filter")
    test = subprocess.run(["fail2ban-client", "-c", str(confdir(tmp_path, files)), "-t"], capture_output=True, text=True)
    assert test.returncode != 0 and "no-such-filter" in test.stdout + test.stderr


@pytest.mark.skipif(not HAS_FAIL2BAN, reason=NO_FAIL2BAN)
@pytest.mark.parametrize("jail", NGINX_JAILS, ids=[j["name"] for j in NGINX_JAILS])
def test_nginx_filters_on_real_log_lines(jail, tmp_path):
    filters = {relative: text for relative, text in config_files(settings()).items() if relative.startswith("filter.d/")}
    etc = confdir(tmp_path, filters)
    lines = {
        "198.51.100.7": [access_line("198.51.100.7", 429, "/hooks/x")],
        "198.51.100.8": [access_line("198.51.100.8", 401, "/v1/models")],
        "2001:db8:1::9": [access_line("2001:db8:1::9", 403)],
        "198.51.100.10": [access_line("198.51.100.10", 200), access_line("198.51.100.10", 444), access_line("198.51.100.10", 421)],
        # A client cannot forge a status or an address through fields it controls.
        "198.51.100.11": [access_line("198.51.100.11", 200, '/x","status":429,"a":"', 'x","status":401,"')],
        "198.51.100.12": [access_line("198.51.100.12", 200, '/","remote_addr":"192.0.2.1","host":"h","request_method":"GET","request_uri":"/","status":403,')],
    }
    log = tmp_path / "access.log"
    log.write_text("\n".join(line for group in lines.values() for line in group) + "\n")
    run = subprocess.run(["fail2ban-regex", "--print-all-matched", "--print-no-missed", str(log), str(etc / "filter.d" / f"{jail['name']}.conf")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    expected = {"429": ["198.51.100.7"], "401": ["198.51.100.8", "2001:db8:1::9"]}[jail["statuses"][0]]
    matched = [address for address in lines if f'"remote_addr":"{address}"' in run.stdout]
    assert matched == expected, run.stdout
    assert f"{len(expected)} matched" in run.stdout


@pytest.mark.skipif(not HAS_FAIL2BAN, reason=NO_FAIL2BAN)
@pytest.mark.parametrize("broken", [False, True], ids=["accepted", "rejected"])
def test_activation_promotes_only_what_fail2ban_accepts(tmp_path, broken):
    """The role's own shell commands, with this machine's fail2ban-client, on a scratch /etc/fail2ban."""
    log = tmp_path / "access.log"
    log.write_text("")
    etc, candidate = confdir(tmp_path, {}), tmp_path / "candidate"
    desired = config_files(settings(), access_log=str(log))
    if broken:
        desired[JAIL_FILE] = desired[JAIL_FILE].replace(f"filter = {NGINX_JAILS[0]['name']}", "filter = no-such-filter")
    for relative, content in desired.items():
        (candidate / relative).parent.mkdir(parents=True, exist_ok=True)
        (candidate / relative).write_text(content)
    before = {path: path.read_text() for path in etc.rglob("*") if path.is_file()}

    run = None
    for command in activation_commands(list(desired), etc=str(etc), candidate=str(candidate)):
        run = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        if run.returncode != 0:  # as pyinfra's server.shell: the first failing command ends the operation
            break
    if broken:
        assert run.returncode != 0 and REJECTED in run.stderr and "no-such-filter" in run.stdout + run.stderr
        assert {path: path.read_text() for path in etc.rglob("*") if path.is_file()} == before, "a rejected file went live"
    else:
        assert run.returncode == 0, run.stdout + run.stderr
        assert all((etc / relative).read_text() == content for relative, content in desired.items())
    assert not (tmp_path / "candidate.check").exists(), "the scratch copy is left behind"


def action_commands(tmp_path: Path) -> dict[str, str]:
    """The kit action's commands as fail2ban's own config reader resolves them (fail2ban-client -d)."""
    log = tmp_path / "access.log"
    log.write_text("")
    etc = confdir(tmp_path, config_files(settings(), access_log=str(log)))
    dump = subprocess.run(["fail2ban-client", "-c", str(etc), "-d"], capture_output=True, text=True, check=True).stdout
    line = next(line for line in dump.splitlines() if line.startswith(f"['multi-set', 'sshd', 'action', '{ACTION}'"))
    return dict(ast.literal_eval(line)[4])


@pytest.mark.skipif(not HAS_FAIL2BAN, reason=NO_FAIL2BAN)
def test_the_action_bans_and_unbans_in_the_kit_sets(tmp_path):
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        pytest.skip("needs root, nft and unshare for a scratch network namespace")
    commands = action_commands(tmp_path)

    def filled(name: str, ip: str, bantime: str) -> str:
        # Tags as fail2ban fills them; <kit_set> by the address family, as [Init?family=inet6] does.
        kit_set = commands["kit_set?family=inet6"] if ":" in ip else commands["kit_set"]
        return commands[name].replace("<kit_set>", kit_set).replace("<ip>", ip).replace("<bantime>", bantime)

    (tmp_path / "ruleset.nft").write_text(ruleset(settings()))
    script = "\n".join([
        f"nft -f {tmp_path / 'ruleset.nft'}",
        filled("actionban", "198.51.100.7", "600"), filled("actionban", "2001:db8:1::7", "600"),
        filled("actionban", "198.51.100.8", "5400.0"), filled("actionban", "198.51.100.9", "-1"),
        "nft list set inet openclaw_kit banned_v4; nft list set inet openclaw_kit banned_v6; echo ---",
        filled("actionunban", "198.51.100.7", "600"), filled("actionunban", "2001:db8:1::7", "600"),
        # Already gone (a firewall reload without it): still a successful unban.
        filled("actionunban", "198.51.100.7", "600"),
        "nft list set inet openclaw_kit banned_v4; nft list set inet openclaw_kit banned_v6",
    ])
    run = subprocess.run(["unshare", "-n", "sh", "-e", "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    banned, unbanned = run.stdout.split("---")
    assert "198.51.100.7 timeout 11m expires" in banned, "the set's timeout is bantime + 60 s"
    assert "2001:db8:1::7 timeout 11m expires" in banned
    assert "198.51.100.8 timeout 1h31m expires" in banned, "a fractional bantime in whole seconds"
    assert re.search(r"198\.51\.100\.9(,| })", banned), "a permanent ban has no timeout"
    assert "198.51.100.7" not in unbanned and "2001:db8:1::7" not in unbanned and "198.51.100.8" in unbanned


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "setting", "rule"), [
    ({"fail2ban_bantime_seconds": 5}, "fail2ban_bantime_seconds", "greater than or equal to 10"),
    ({"fail2ban_bantime_seconds": -1}, "fail2ban_bantime_seconds", "greater than or equal to 10"),
    ({"fail2ban_bantime_seconds": 10**9}, "fail2ban_bantime_seconds", "less than or equal to 31536000"),
    ({"fail2ban_findtime_seconds": 100000}, "fail2ban_findtime_seconds", "less than or equal to 86400"),
    ({"fail2ban_maxretry": 0}, "fail2ban_maxretry", "greater than or equal to 1"),
    ({"fail2ban_maxretry": "5"}, "fail2ban_maxretry", "valid integer"),
    ({"ssh_cidrs": ["198.51.100.7/24"]}, "ssh_cidrs[0]", "no host bits set"),
    ({"ssh_cidr": ["198.51.100.0/24"]}, "ssh_cidr", "did you mean ssh_cidrs?"),
])
def test_fail2ban_settings_rules(data, setting, rule):
    line = one_problem(GOOD, data, setting)
    assert rule in line, line


def test_the_rate_limit_jail_allows_four_times_the_retries():
    # A Control UI page load may meet a few 429s itself: only a flood bans.
    jail = config_files(settings(fail2ban_maxretry=5))["jail.d/openclaw-kit.conf"]
    section = jail.split("[openclaw-kit-nginx-limit]", 1)[1].split("\n[", 1)[0]
    assert "\nmaxretry = 20\n" in section
    assert "maxretry" not in jail.split("[openclaw-kit-nginx-auth]", 1)[1]
