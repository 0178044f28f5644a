"""Role openclaw on macOS (roles/openclaw/, its backend roles/openclaw/launchd.py) on recorded facts of a macOS 15 Apple-silicon
host: the operations on a fresh, a converged and a drifted Mac, the LaunchDaemon's plist, the
Node.js pins and the scripts. Never run on a Mac."""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess

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
                   **dict.fromkeys(("/usr/local/sbin", "/usr/local/libexec", "/usr/local/lib/openclaw-kit",
                                    f"{role.PREFIX}/releases"), ("drwxr-xr-x", "root", "wheel"))}
    rendered = render("openclaw", "openclaw.json5.j2", settings=s, channels=channel_config(s), log_file=common.LOG_FILE,
                      live_config=role.LIVE_CONFIG)
    digest = jsonconfig.digest(jsonconfig.load_commented(rendered))
    stat = "user={} group={} mode={} atime=1 mtime=1 ctime=1 size=1 {}"
    return {
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
        **file_responses({**placed, **plists, **config}, modes),
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


def test_a_per_user_agent_openclaw_installed_is_booted_out_disabled_and_its_state_copied():
    s = settings()
    responses = {"ls -1 /Users/*/Library/LaunchAgents/ai.openclaw.gateway.plist": recorded("user-agent.txt"),
                 **converged_responses(s)}
    planned = run_role(openclaw, s, responses)
    assert names(planned) == ["The per-user agent ai.openclaw.gateway of admin booted out and disabled; its state "
                              "copied to /var/db/openclaw"]
    script = planned[0][1][0]
    assert 'launchctl bootout "gui/$uid/ai.openclaw.gateway"' in script and 'launchctl disable "gui/$uid/ai.openclaw.gateway"' in script
    assert "ditto /Users/admin/.openclaw /var/db/openclaw" in script


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


def test_the_gateway_plist_parses_uses_only_launchd_keys_and_holds_no_secret():
    text = launchd.plist_text(role.gateway_plist(settings()))
    plist = plistlib.loads(text.encode())
    assert set(plist) <= launchd.KEYS
    assert plist["Label"] == "ai.openclaw.gateway" and plist["UserName"] == "_openclaw"
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] is True and plist["Umask"] == 0o077
    assert plist["ThrottleInterval"] > 0 and plist["ExitTimeOut"] > 0
    assert plist["StandardErrorPath"].startswith(role.LOG_DIR + "/")
    assert not any("TOKEN" in key or "SECRET" in key for key in plist["EnvironmentVariables"])
    assert "t" * 64 not in text


def test_the_account_id_is_the_first_free_one_below_500():
    taken = role.UniqueIds().process(recorded("dscl-list-ids.txt").splitlines())
    assert 441 in taken and 501 in taken and -2 in taken
    assert role.free_id(taken) == 400
    assert role.free_id(taken | {400, 401}) == 402
    assert role.DirectoryUser().process(recorded("dscl-read-_openclaw.txt").splitlines())["UniqueID"] == "400"
    assert role.UserAgents().process(recorded("user-agent.txt").splitlines()) == [
        ("admin", "/Users/admin/Library/LaunchAgents/ai.openclaw.gateway.plist")]


SCRIPTS = {
    "gateway": lambda: render("openclaw", "macos/openclaw-kit-gateway.j2", port=18789, **role.cli_data()),
    "cli": lambda: render("openclaw", "macos/openclaw-kit-cli.j2", **role.cli_data()),
    "install": lambda: "#!/bin/sh\n" + render("openclaw", "macos/install-release.sh.j2", release=RELEASE, node_dir=NODE_DIR,
                                              version="2026.9.6", proxy="http://proxy.example:3128"),
    "node": lambda: "#!/bin/sh\n" + render(
        "openclaw", "macos/install-node.sh.j2", version="24.21.0", arch="arm64", node_dir=NODE_DIR, sha256="b" * 64,
        url="https://nodejs.org/dist/v24.21.0/node-v24.21.0-darwin-arm64.tar.gz", archive="/opt/openclaw/downloads/n.tar.gz",
        proxy="http://proxy.example:3128"),
    "switch": lambda: "#!/bin/sh\n" + render("openclaw", "macos/switch-release.sh.j2", release=RELEASE, current=role.CURRENT),
    "handover": lambda: "#!/bin/sh\n" + render("openclaw", "macos/user-agent-handover.sh.j2", label=role.LABEL, user="admin",
                                               plist="/Users/admin/Library/LaunchAgents/ai.openclaw.gateway.plist",
                                               user_state="/Users/admin/.openclaw", state_dir=role.STATE_DIR,
                                               service_user=role.USER),
}


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (./kit installs it)")
@pytest.mark.parametrize("name", list(SCRIPTS))
def test_the_macos_gateway_scripts_pass_shellcheck(name, tmp_path):
    (tmp_path / "script").write_text(SCRIPTS[name]())
    checked = subprocess.run(["shellcheck", "--severity=style", str(tmp_path / "script")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


def test_the_start_script_reads_the_secrets_file_and_runs_the_current_release():
    text = SCRIPTS["gateway"]()
    assert f". {role.ENV_FILE}" in text and f"exec {role.CURRENT}/bin/openclaw gateway --port 18789" in text


def test_the_start_script_runs_the_gateway_with_the_secrets_of_the_env_file(tmp_path):
    (tmp_path / "current" / "bin").mkdir(parents=True)
    fake = tmp_path / "current" / "bin" / "openclaw"
    fake.write_text('#!/bin/sh\necho "args $*"\necho "token $OPENCLAW_GATEWAY_TOKEN"\n')
    fake.chmod(0o755)
    (tmp_path / "gateway.env").write_text("OPENCLAW_GATEWAY_TOKEN='s3cret with space'\n")
    data = {**role.cli_data(), "current": str(tmp_path / "current"), "env_file": str(tmp_path / "gateway.env")}
    (tmp_path / "start").write_text(render("openclaw", "macos/openclaw-kit-gateway.j2", port=18789, **data))
    run = subprocess.run(["sh", str(tmp_path / "start")], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["args gateway --port 18789", "token s3cret with space"]
