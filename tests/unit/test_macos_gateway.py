"""Role openclaw on macOS (roles/openclaw/, its backend roles/openclaw/launchd.py) on recorded facts of a macOS 15 Apple-silicon
host: the operations on a fresh, a converged and a drifted Mac, the LaunchDaemon's plist, the
Node.js pins and the scripts. Never run on a Mac."""

from __future__ import annotations

import plistlib
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import roles.openclaw as common
from openclaw_kit import jsonconfig, launchd
from openclaw_kit.errors import ControllerError, SettingsError
from openclaw_kit.platform import System
from openclaw_kit.secrets import line_digests
from openclaw_kit.settings import validate_hosts
from openclaw_kit.templates import render
from roles.openclaw import channel_config, openclaw
from roles.openclaw import launchd as role
from tests.unit.fake_host import ENV
from tests.unit.macos_host import FRESH, file_responses, recorded, run_role, uploads
from tests.unit.plists import differences, libplist_parse, needs_plistutil

GOOD = {"domain": "gw.example.com", "admin_email": "admin@example.com", "admin_cidrs": ["203.0.113.0/24"]}
RELEASE = f"{role.PREFIX}/releases/openclaw-2026.9.6-node-v24.21.0"
NODE_DIR = f"{role.PREFIX}/node-v24.21.0"


def settings(env=ENV, **data):
    return validate_hosts({"mini": {**GOOD, **data}}, env, {"mini": System("Darwin", "macOS", 15, arch="arm64")})["mini"]


def names(planned) -> list[str]:
    return [name.removeprefix("openclaw | ") for name, _ in planned]


def converged_responses(s, env=ENV) -> dict:
    """A Mac the kit has deployed with settings `s`: the account, the directories, every file with its
    content, Node.js and the release installed and current, the live config's kit sections, the daemon loaded."""
    files = uploads(openclaw, s, FRESH)
    plists = {f"{launchd.DAEMONS}/{path.rsplit('/', 1)[1]}": content for path, content in files.items()
              if path.startswith(launchd.CANDIDATES)}
    config = {f"{common.CONFIG_DIR}/{common.DESIRED_NAME}": content for path, content in files.items()
              if path.startswith(role.CONFIG_CANDIDATE_DIR)}
    placed = {p: c for p, c in files.items() if not p.startswith((launchd.CANDIDATES, role.CONFIG_CANDIDATE_DIR))}
    modes = {role.CLI: ("-rwxr-xr-x", "root", "wheel"), role.GATEWAY: ("-rwxr-xr-x", "root", "wheel"),
             common.MERGE: ("-rwxr-xr-x", "root", "wheel"), role.ENV_FILE: ("-rw-------", role.USER, role.USER),
             f"{common.CONFIG_DIR}/{common.DESIRED_NAME}": ("-rw-r-----", "root", role.USER)}
    directories = {role.STATE_DIR: ("drwx------", role.USER, role.USER), role.LOG_DIR: ("drwxr-x---", role.USER, role.USER),
                   common.CONFIG_DIR: ("drwxr-x---", "root", role.USER),
                   # /etc/newsyslog.d: macOS' own (Apple's rotation entries live there).
                   **dict.fromkeys(("/usr/local/sbin", "/usr/local/libexec", "/usr/local/lib/openclaw-kit",
                                    f"{role.PREFIX}/releases", "/etc/newsyslog.d"), ("drwxr-xr-x", "root", "wheel"))}
    rendered = render("openclaw", "openclaw.json5.j2", settings=s, channels=channel_config(s), log_file=common.LOG_FILE,
                      live_config=role.LIVE_CONFIG)
    digest = jsonconfig.digest(jsonconfig.load_commented(rendered))
    stat = "user={} group={} mode={} atime=1 mtime=1 ctime=1 size=1 {}"
    return {
        # First: a placed file's one fact names its parent directory too, which the stat answers below match.
        **file_responses({**placed, **plists, **config}, modes),
        # The secrets file as the kit wrote it: its lines' salted digests (openclaw_kit.secrets.EnvFileDigests).
        re.compile(rf"while IFS= read -r line.* < {re.escape(common.ENV_FILE)}"): [
            f"{name} {digest}" for name, digest in line_digests(s.secrets()).items()],
        "dscl . -read /Users/_openclaw": recorded("dscl-read-_openclaw.txt"),
        f"launchctl print system/{role.LABEL}": recorded("launchctl-print-system-org.openclaw-kit.firewall.txt").replace(
            "org.openclaw-kit.firewall", role.LABEL),
        "merge-config.py --digest": digest,
        re.compile(rf"stat .*{re.escape(role.CURRENT)}( |'|$)"): stat.format("root", "wheel", "lrwxr-xr-x",
                                                                            f"{role.CURRENT} -> {RELEASE}"),
        **{re.compile(rf"stat .*{re.escape(path)}( |'|$)"): stat.format("root", "wheel", "-rwxr-xr-x", path)
           for path in (f"{NODE_DIR}/bin/node", f"{RELEASE}/.installed")},
        **{re.compile(rf"stat .*{re.escape(path)}( |'|$)"): stat.format(u, g, m, path) for path, (m, u, g) in directories.items()},
        **FRESH,
    }


def test_a_fresh_mac_gets_the_account_node_openclaw_config_and_the_daemon_loaded():
    planned = run_role(openclaw, settings(), FRESH)
    assert names(planned) == [
        "Hidden service account _openclaw (UID 400, no login shell, home /var/db/openclaw)",
        "State directory /var/db/openclaw", "Log directory /var/log/openclaw", "Config directory /etc/openclaw",
        # Every secret is new on a fresh Mac, so named (by name only), as on Linux.
        "Secrets file /etc/openclaw/gateway.env (changed: OPENCLAW_GATEWAY_TOKEN)",
        "Directory /usr/local/sbin", "Directory /usr/local/libexec", "Directory /usr/local/lib/openclaw-kit",
        "Directory /opt/openclaw/releases",
        "Node.js 24.21.0 (darwin-arm64, sha256 pinned)",
        "Install OpenClaw 2026.9.6",
        "CLI wrapper /usr/local/sbin/openclaw-kit-cli",
        "Config merge tool /usr/local/lib/openclaw-kit/merge-config.py",
        "Config /etc/openclaw/openclaw.json: validated by the OpenClaw that will run it, then made live",
        "Gateway start script /usr/local/libexec/openclaw-kit-gateway",
        "Switch /opt/openclaw/current to OpenClaw 2026.9.6",
        "Rotation of the gateway's stdout and stderr logs /etc/newsyslog.d/openclaw-kit.conf",
        "The gateway as a LaunchDaemon: /Library/LaunchDaemons/ai.openclaw.gateway.plist",
        "The gateway as a LaunchDaemon: load ai.openclaw.gateway (launchctl bootstrap system)",
        "Wait for ai.openclaw.gateway to answer /healthz",
        "Remove releases other than the running one",
    ]
    commands = {name.removeprefix("openclaw | "): c for name, c in planned}
    account = commands["Hidden service account _openclaw (UID 400, no login shell, home /var/db/openclaw)"]
    # 400: the first id below 500 no account or group of the recorded Mac uses.
    assert "dscl . -create /Users/_openclaw UniqueID 400" in account and "dscl . -create /Users/_openclaw IsHidden 1" in account
    assert "dscl . -create /Users/_openclaw UserShell /usr/bin/false" in account
    assert commands["The gateway as a LaunchDaemon: load ai.openclaw.gateway (launchctl bootstrap system)"] == [
        "launchctl enable system/ai.openclaw.gateway", "launchctl bootstrap system /Library/LaunchDaemons/ai.openclaw.gateway.plist"]
    node = commands["Node.js 24.21.0 (darwin-arm64, sha256 pinned)"][0]
    assert "https://nodejs.org/dist/v24.21.0/node-v24.21.0-darwin-arm64.tar.gz" in node
    assert "bed7eea5325e1108f32ce5228ddd6a5f0f08a499ee42aa7442aea583702f6057" in node and "shasum -a 256 -c" in node
    config = commands["Config /etc/openclaw/openclaw.json: validated by the OpenClaw that will run it, then made live"]
    check = next(c for c in config if "config validate" in c)
    assert f"{role.CLI} --release {RELEASE} --config {role.LIVE_CONFIG}.kit-candidate config validate --json" in check


def test_a_converged_mac_plans_nothing():
    s = settings()
    assert run_role(openclaw, s, converged_responses(s)) == []


def test_a_new_secret_is_named_restarts_the_gateway_with_kickstart_and_waits_for_it():
    telegram = {"channels": {"telegram": {"bot_token": "${TELEGRAM_BOT_TOKEN}", "allow_from": [12345]}}}
    env = {**ENV, "TELEGRAM_BOT_TOKEN": "123456:" + "b" * 35}
    converged = converged_responses(settings(env=env, **telegram), env)
    rotated = {**env, "OPENCLAW_GATEWAY_TOKEN": "u" * 64}
    planned = run_role(openclaw, settings(env=rotated, **telegram), converged)
    assert names(planned) == [
        # The same report as on Linux: the secret that changed, by name, never its value.
        "Secrets file /etc/openclaw/gateway.env (changed: OPENCLAW_GATEWAY_TOKEN)",
        "The gateway as a LaunchDaemon: restart ai.openclaw.gateway for its new code, config or secrets (kickstart -k)",
        "Wait for ai.openclaw.gateway to answer /healthz",
    ]
    assert planned[1][1] == ["launchctl kickstart -k system/ai.openclaw.gateway"]
    assert "u" * 64 not in repr(planned) and "t" * 64 not in repr(planned)


def test_a_new_port_replaces_the_plist_checked_by_plutil_and_reloads_the_daemon():
    converged = converged_responses(settings())
    planned = names(run_role(openclaw, settings(gateway_port=20000), converged))
    assert planned == [
        "Config /etc/openclaw/openclaw.json: validated by the OpenClaw that will run it, then made live",
        "Gateway start script /usr/local/libexec/openclaw-kit-gateway",
        "The gateway as a LaunchDaemon: restart ai.openclaw.gateway for its new code, config or secrets (kickstart -k)",
        "Wait for ai.openclaw.gateway to answer /healthz",
    ]


RELOAD = "The gateway as a LaunchDaemon: reload ai.openclaw.gateway for its new plist (bootout, wait until it has left, bootstrap)"


def test_a_changed_plist_reloads_the_gateway_once_the_old_job_has_left_the_domain():
    s = settings()
    responses = converged_responses(s)
    # The plist of an earlier kit: KeepAlive true, no ProcessType.
    earlier = {key: value for key, value in role.gateway_plist(s).items() if key != "ProcessType"} | {"KeepAlive": True}
    responses.update(file_responses({launchd.plist_path(role.LABEL): launchd.plist_text(earlier)}, {}))
    planned = run_role(openclaw, s, responses)
    assert names(planned) == ["The gateway as a LaunchDaemon: /Library/LaunchDaemons/ai.openclaw.gateway.plist", RELOAD,
                              "Wait for ai.openclaw.gateway to answer /healthz"]
    # Not `bootout || true; bootstrap`: that fails with "5: Input/output error" while the old job leaves.
    assert planned[1][1] == [launchd.reload_script(role.LABEL, role.gateway_plist(s)).rstrip("\n")]
    assert "wait_limit=360\n" in planned[1][1][0]  # ExitTimeOut 330 + 30


def test_a_reload_cut_off_or_failed_earlier_is_done_again_and_only_that():
    s = settings()
    responses = {**converged_responses(s), **file_responses({launchd.reload_pending_path(role.LABEL): ""}, {})}
    assert names(run_role(openclaw, s, responses)) == [RELOAD, "Wait for ai.openclaw.gateway to answer /healthz"]
    # A new secret then restarts nothing more: the reload starts the new code anyway (no kickstart after it).
    rotated = {**ENV, "OPENCLAW_GATEWAY_TOKEN": "u" * 64}
    assert names(run_role(openclaw, settings(env=rotated), responses)) == [
        "Secrets file /etc/openclaw/gateway.env (changed: OPENCLAW_GATEWAY_TOKEN)", RELOAD,
        "Wait for ai.openclaw.gateway to answer /healthz"]


def test_a_job_left_unloaded_by_a_failed_reload_is_loaded_and_its_marker_removed():
    s = settings()
    responses = {**converged_responses(s), **file_responses({launchd.reload_pending_path(role.LABEL): ""}, {}),
                 f"launchctl print system/{role.LABEL}": 'Could not find service "ai.openclaw.gateway" in domain for system'}
    planned = run_role(openclaw, s, responses)
    assert planned == [
        ("openclaw | The gateway as a LaunchDaemon: load ai.openclaw.gateway (launchctl bootstrap system)", [
            "launchctl enable system/ai.openclaw.gateway", "launchctl bootstrap system /Library/LaunchDaemons/ai.openclaw.gateway.plist",
            "rm -f /var/db/openclaw-kit/launchd-reload-pending/ai.openclaw.gateway"]),
        ("openclaw | Wait for ai.openclaw.gateway to answer /healthz", [role.health_wait_command(s.gateway_port)]),
    ]


AGENT = "/Users/admin/Library/LaunchAgents/ai.openclaw.gateway.plist"


def test_a_per_user_agent_openclaw_installed_is_booted_out_disabled_and_its_state_copied():
    s = settings()
    responses = {"grep -l gateway /Users/*/Library/LaunchAgents/ai.openclaw.*.plist": recorded("user-agent.txt"),
                 **converged_responses(s)}
    planned = run_role(openclaw, s, responses)
    assert planned == [("openclaw | The per-user agent ai.openclaw.gateway of admin booted out and disabled; its state "
                        "copied to /var/db/openclaw", [role.handover_script("admin", "ai.openclaw.gateway", AGENT).rstrip("\n")])]
    script = planned[0][1][0]
    assert "ditto /Users/admin/.openclaw /var/db/openclaw" in script


def test_openclaws_profile_and_legacy_agents_are_found_its_node_host_and_other_tools_are_not():
    # `grep -l gateway` over ai.openclaw.*.plist and com.openclaw.*.plist: a profile's gateway
    # (ai.openclaw.work, OpenClaw's --profile label) and a legacy com.openclaw.* one hold the port too.
    listing = [AGENT, "/Users/admin/Library/LaunchAgents/ai.openclaw.work.plist",
               "/Users/ops/Library/LaunchAgents/com.openclaw.gateway.plist",
               "/Users/admin/Library/LaunchAgents/ai.openclaw.node.plist"]
    assert role.UserAgents().process(listing) == [
        ("admin", "ai.openclaw.gateway", AGENT),
        ("admin", "ai.openclaw.work", "/Users/admin/Library/LaunchAgents/ai.openclaw.work.plist"),
        ("ops", "com.openclaw.gateway", "/Users/ops/Library/LaunchAgents/com.openclaw.gateway.plist"),
    ]
    assert "com.openclaw.*.plist" in role.UserAgents().command() and "ai.openclaw.*.plist" in role.UserAgents().command()


# A stand-in launchctl: a domain exists when its directory does under $LAUNCHD, a job when its file
# does; every call is logged. `disable` fails in a domain that does not exist, as the issue reports.
LAUNCHCTL = """#!/bin/sh
echo "launchctl $*" >> "$LAUNCHD/calls"
case "$1" in
print) [ -e "$LAUNCHD/$2" ] ;;
bootout) rm -f "$LAUNCHD/$2" ;;
disable) [ -d "$LAUNCHD/${2%/*}" ] || { echo "Could not find domain for ${2%/*}" >&2; exit 112; } ;;
*) exit 1 ;;
esac
"""


def run_handover(tmp_path, *, gui: bool, loaded: bool):
    bin_dir, launchd_dir, home = tmp_path / "bin", tmp_path / "launchd", tmp_path / "Users" / "admin"
    for directory in (bin_dir, launchd_dir / "user" / "501", home / "Library" / "LaunchAgents", home / ".openclaw"):
        directory.mkdir(parents=True)
    if gui:
        (launchd_dir / "gui" / "501").mkdir(parents=True)
        if loaded:
            (launchd_dir / "gui" / "501" / "ai.openclaw.gateway").touch()
    stand_ins = {"launchctl": LAUNCHCTL, "id": "#!/bin/sh\necho 501\n", "chown": "#!/bin/sh\necho \"chown $*\" >> \"$LAUNCHD/calls\"\n",
                 "ditto": '#!/bin/sh\nmkdir -p "$2" && cp -R "$1/." "$2/"\n'}
    for name, text in stand_ins.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    plist = home / "Library" / "LaunchAgents" / "ai.openclaw.gateway.plist"
    plist.write_text("<plist/>")
    (home / ".openclaw" / "openclaw.json").write_text("{}")
    state = tmp_path / "state"
    script = render("openclaw", "macos/user-agent-handover.sh.j2", label="ai.openclaw.gateway", user="admin",
                    plist=str(plist), parked_dir=str(home / "Library" / "LaunchAgents-disabled-by-openclaw-kit"),
                    user_state=str(home / ".openclaw"), state_dir=str(state), service_user=role.USER)
    run = subprocess.run([shutil.which("dash") or "sh", "-c", script], capture_output=True, text=True, timeout=30,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LAUNCHD": str(launchd_dir)})
    calls = (launchd_dir / "calls").read_text().splitlines() if (launchd_dir / "calls").exists() else []
    return run, calls, plist, state


def test_the_handover_works_on_a_headless_mac_with_nobody_logged_in(tmp_path):
    run, calls, plist, state = run_handover(tmp_path, gui=False, loaded=False)
    assert run.returncode == 0, run.stderr
    # No gui/501 domain: nothing to boot out or disable there; the plist moved out of LaunchAgents is what counts.
    assert calls == ["launchctl print gui/501/ai.openclaw.gateway", "launchctl print user/501/ai.openclaw.gateway",
                     "launchctl print gui/501", f"chown -R {role.USER}:{role.USER} {state}"]
    assert not plist.exists() and (plist.parent.parent / "LaunchAgents-disabled-by-openclaw-kit" / plist.name).exists()
    assert (state / "openclaw.json").exists()


def test_the_handover_boots_out_and_disables_an_agent_of_a_logged_in_user(tmp_path):
    run, calls, plist, _ = run_handover(tmp_path, gui=True, loaded=True)
    assert run.returncode == 0, run.stderr
    assert calls[:5] == ["launchctl print gui/501/ai.openclaw.gateway", "launchctl bootout gui/501/ai.openclaw.gateway",
                         "launchctl print user/501/ai.openclaw.gateway", "launchctl print gui/501",
                         "launchctl disable gui/501/ai.openclaw.gateway"]
    assert not plist.exists() and "was booted out" in run.stderr


def test_a_drifted_account_is_put_back_with_its_own_uid():
    s = settings()
    responses = converged_responses(s)
    responses["dscl . -read /Users/_openclaw"] = (recorded("dscl-read-_openclaw.txt").replace("/usr/bin/false", "/bin/zsh")
                                                  .replace("400", "401"))
    planned = run_role(openclaw, s, responses)
    assert names(planned) == ["Hidden service account _openclaw (UID 401, no login shell, home /var/db/openclaw)"]


def test_a_mac_without_the_command_line_tools_is_refused_before_any_change():
    with pytest.raises(ControllerError, match="host @fake/mini: the Xcode Command Line Tools are missing"):
        run_role(openclaw, settings(), {**FRESH, "xcode-select -p": ""})


def test_a_node_version_without_a_pinned_darwin_checksum_needs_node_sha256():
    with pytest.raises(SettingsError, match=r"node_sha256 = None: no pinned checksum is known for Node.js 24.22.0 "
                                           r"\(darwin-arm64\).*the line for node-v24.22.0-darwin-arm64.tar.gz"):
        run_role(openclaw, settings(node_version="24.22.0"), FRESH)
    planned = run_role(openclaw, settings(node_version="24.22.0", node_sha256="a" * 64), FRESH)
    assert "a" * 64 in dict(planned)["openclaw | Node.js 24.22.0 (darwin-arm64, sha256 pinned)"][0]


def test_the_pinned_darwin_checksums_are_those_of_the_official_shasums():
    # From https://nodejs.org/dist/v24.21.0/SHASUMS256.txt; its linux-x64.tar.xz line is the one pinned for Linux.
    from openclaw_kit.pins import NODE_DARWIN_SHA256, NODE_LINUX_SHA256
    assert NODE_LINUX_SHA256[("nodejs-dist", "24.21.0", "x64")] == "fd8e59d5a511510f6a298afb548f18c7d2b1be404d8b4a27d94fbe49f56cb2d6"
    assert NODE_DARWIN_SHA256 == {
        ("24.21.0", "arm64"): "bed7eea5325e1108f32ce5228ddd6a5f0f08a499ee42aa7442aea583702f6057",
        ("24.21.0", "x64"): "1462cb3b3046b815cf8ea436d3da450ec1a9f11dac7e5a46b0ada5305d7e8097",
    }


GATEWAY_PLIST = {
    "Label": "ai.openclaw.gateway",
    "ProgramArguments": ["/usr/local/libexec/openclaw-kit-gateway"],
    "UserName": "_openclaw",
    "GroupName": "_openclaw",
    "RunAtLoad": True,
    "KeepAlive": {"SuccessfulExit": False},  # with the start script's 78 -> 0: no restart after a config error
    "ThrottleInterval": 10,
    "ExitTimeOut": 330,
    "ProcessType": "Interactive",
    "Umask": 0o077,
    "WorkingDirectory": "/var/db/openclaw",
    "EnvironmentVariables": {
        "HOME": "/var/db/openclaw",
        "PATH": "/opt/openclaw/current/bin:/usr/bin:/bin",
        "OPENCLAW_STATE_DIR": "/var/db/openclaw",
        "OPENCLAW_CONFIG_PATH": "/var/db/openclaw/openclaw.json",
        "OPENCLAW_SUPERVISOR_MODE": "external",
        "OPENCLAW_SERVICE_REPAIR_POLICY": "external",
        "OPENCLAW_NO_AUTO_UPDATE": "1",
        "OPENCLAW_OFFLINE": "1",
        "OPENCLAW_DISABLE_BONJOUR": "1",
    },
    "StandardOutPath": "/var/log/openclaw/gateway.stdout.log",
    "StandardErrorPath": "/var/log/openclaw/gateway.stderr.log",
}


def test_the_gateway_plist_is_the_documented_one_key_by_key_and_holds_no_secret():
    text = launchd.plist_text(role.gateway_plist(settings()))
    assert set(plistlib.loads(text.encode())) <= launchd.KEYS
    # Values and types, nested ones too (True == 1 in Python; RunAtLoad 1 is no <true/>).
    assert differences(plistlib.loads(text.encode()), GATEWAY_PLIST) == []
    assert "t" * 64 not in text


@needs_plistutil
def test_the_gateway_plist_reads_the_same_with_libplist():
    assert differences(libplist_parse(launchd.plist_text(role.gateway_plist(settings()))), GATEWAY_PLIST) == []


def test_the_account_id_is_the_first_free_one_below_500():
    taken = role.UniqueIds().process(recorded("dscl-list-ids.txt").splitlines())
    assert 441 in taken and 501 in taken and -2 in taken
    assert role.free_id(taken) == 400
    assert role.free_id(taken | {400, 401}) == 402
    assert role.DirectoryUser().process(recorded("dscl-read-_openclaw.txt").splitlines())["UniqueID"] == "400"
    assert role.UserAgents().process(recorded("user-agent.txt").splitlines()) == [("admin", "ai.openclaw.gateway", AGENT)]


def start_script(tmp_path, gateway: str) -> Path:
    """The start script with a stand-in openclaw running `gateway` (sh) and a secrets file."""
    (tmp_path / "current" / "bin").mkdir(parents=True)
    fake = tmp_path / "current" / "bin" / "openclaw"
    fake.write_text("#!/bin/sh\n" + gateway)
    fake.chmod(0o755)
    (tmp_path / "gateway.env").write_text("OPENCLAW_GATEWAY_TOKEN='s3cret with space'\n")
    data = {**role.cli_data(), "current": str(tmp_path / "current"), "env_file": str(tmp_path / "gateway.env")}
    (tmp_path / "start").write_text(render("openclaw", "macos/openclaw-kit-gateway.j2", port=18789, **data))
    return tmp_path / "start"


SH = shutil.which("dash") or "sh"


def test_the_start_script_runs_the_gateway_with_the_secrets_of_the_env_file(tmp_path):
    script = start_script(tmp_path, 'echo "args $*"\necho "token $OPENCLAW_GATEWAY_TOKEN"\nexit 3\n')
    run = subprocess.run([SH, str(script)], capture_output=True, text=True, timeout=30)
    assert run.stdout.splitlines() == ["args gateway --port 18789", "token s3cret with space"]
    assert run.returncode == 3, run.stderr  # a failure of its own: non-zero, so KeepAlive {SuccessfulExit: false} restarts it


@pytest.mark.parametrize(("gateway_exit", "script_exit", "said"), [
    (78, 0, "exited 78 (its config was rejected); launchd does not restart it"),  # RestartPreventExitStatus=78
    (1, 1, ""),
    (0, 1, "exited by itself; launchd starts it again"),  # Restart=always restarts a clean exit too
])
def test_the_start_script_turns_exit_78_into_no_restart_and_any_other_exit_into_a_restart(
        tmp_path, gateway_exit, script_exit, said):
    run = subprocess.run([SH, str(start_script(tmp_path, f"exit {gateway_exit}\n"))], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == script_exit, run.stderr
    assert said in run.stderr


def test_a_stop_by_launchd_reaches_the_gateway_and_ends_with_its_status(tmp_path):
    # launchd stops a job with SIGTERM to its process: the script passes it on and waits for the gateway.
    gateway = f'trap \'echo stopped > {tmp_path}/stopped; exit 0\' TERM\necho up > {tmp_path}/up\nwhile :; do sleep 0.1; done\n'
    started = subprocess.Popen([SH, str(start_script(tmp_path, gateway))], stderr=subprocess.PIPE, text=True)
    for _ in range(400):  # the gateway is up (the script's trap is set before it starts)
        if (tmp_path / "up").exists():
            break
        time.sleep(0.05)
    started.send_signal(signal.SIGTERM)
    assert started.wait(timeout=10) == 0, started.stderr.read()
    assert (tmp_path / "stopped").read_text() == "stopped\n" and started.stderr.read() == ""


def newsyslog_entries(text: str) -> list[list[str]]:
    """newsyslog.conf(5): per line logfile_name [owner:group] mode count size when [flags] [pid_file] [sig_num];
    '#' starts a comment. Checked field by field, as newsyslog parses them."""
    entries = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        assert fields[0].startswith("/"), line
        rest = fields[2:] if ":" in fields[1] else fields[1:]
        mode, count, size, when, *more = rest
        assert re.fullmatch(r"[0-7]{3}", mode) and count.isdigit() and (size == "*" or size.isdigit()), line
        assert when == "*" or re.fullmatch(r"\d*(@|\$)?[\dTDWM]*", when), line
        assert not more or (set(more[0]) <= set("-BCDGJNUWXZ") and len(more) <= 3), line
        entries.append(fields)
    return entries


def test_the_gateways_logs_are_rotated_by_newsyslog():
    text = uploads(openclaw, settings(), FRESH)[role.NEWSYSLOG].decode()
    assert newsyslog_entries(text) == [
        [GATEWAY_PLIST["StandardOutPath"], "_openclaw:_openclaw", "640", "5", "10240", "*", "N"],
        [GATEWAY_PLIST["StandardErrorPath"], "_openclaw:_openclaw", "640", "5", "10240", "*", "N"],
    ]
