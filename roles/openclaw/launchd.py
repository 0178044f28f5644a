"""Role openclaw on macOS: the gateway as the LaunchDaemon ai.openclaw.gateway, headless
(roles/openclaw/__init__.py holds what every platform shares: directories, secrets, the config gate).

OpenClaw itself installs only a per-user LaunchAgent, which needs a logged-in GUI session. Here
the gateway is a system daemon that starts at boot with nobody logged in, as the hidden service
account `_openclaw` (UID below 500, no login shell, home in /var/db). It uses OpenClaw's own label,
so that OpenClaw's CLI finds a system daemon and adds no competing per-user agent; one installed
earlier is booted out and disabled. Node.js is the official darwin tarball, sha256 pinned.
Tested on recorded facts of a macOS 15 host (tests/unit/test_macos_gateway.py), not on a Mac.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import File
from pyinfra.facts.server import Arch
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from openclaw_kit import gateway, launchd
from openclaw_kit.errors import ControllerError, SettingsError
from openclaw_kit.layout import GATEWAY_CLI as CLI
from openclaw_kit.layout import GATEWAY_CURRENT as CURRENT
from openclaw_kit.layout import GATEWAY_ENV_FILE as ENV_FILE
from openclaw_kit.layout import GATEWAY_LOG_DIR as LOG_DIR
from openclaw_kit.layout import GATEWAY_PREFIX as PREFIX
from openclaw_kit.pins import NODE_DARWIN_SHA256
from openclaw_kit.platform_macos import MACOS_ARCHES
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render, template

LABEL = "ai.openclaw.gateway"  # OpenClaw's own: its CLI refuses a per-user agent next to a system daemon
USER = "_openclaw"
REAL_NAME = "OpenClaw gateway"
NOT_GATEWAYS = {"ai.openclaw.node"}  # OpenClaw's node host: it connects to a gateway, it holds no port
UID_RANGE = range(400, 500)  # system accounts below 500 are hidden from the login window
STATE_DIR = "/var/db/openclaw"
CONFIG_CANDIDATE_DIR = "/var/db/openclaw-kit/openclaw-config-candidate"
LIVE_CONFIG = f"{STATE_DIR}/openclaw.json"
GATEWAY = "/usr/local/libexec/openclaw-kit-gateway"
STDOUT_LOG, STDERR_LOG = f"{LOG_DIR}/gateway.stdout.log", f"{LOG_DIR}/gateway.stderr.log"
NEWSYSLOG = "/etc/newsyslog.d/openclaw-kit.conf"

class DirectoryUser(FactBase):
    """A local account as `dscl . -read` shows it ({"UniqueID": "401", ...}), or None when there is none."""

    def command(self, user: str) -> str:
        return (f"dscl . -read /Users/{shlex.quote(user)} UniqueID PrimaryGroupID UserShell NFSHomeDirectory "
                "IsHidden 2>/dev/null || true")

    def process(self, output):
        found = dict(line.split(": ", 1) for line in output if ": " in line)
        return found or None


class UniqueIds(FactBase):
    """Every UniqueID and PrimaryGroupID in use (dscl . -list /Users UniqueID, /Groups PrimaryGroupID)."""

    def command(self) -> str:
        return "dscl . -list /Users UniqueID; dscl . -list /Groups PrimaryGroupID"

    def process(self, output) -> set[int]:
        ids = (line.split()[-1] for line in output if line.split())
        return {int(value) for value in ids if value.lstrip("-").isdigit()}


class UserAgents(FactBase):
    """Per-user LaunchAgents of an OpenClaw gateway, which would hold its port: [(user, label, plist path)].
    OpenClaw's labels (src/daemon/constants.ts): ai.openclaw.gateway, ai.openclaw.<profile> with
    --profile; com.openclaw.* is the legacy prefix its docs say may remain. Only plists that name a
    gateway count (not OpenClaw's node host, ai.openclaw.node, nor another tool's com.openclaw.*)."""

    def command(self) -> str:
        return ("grep -l gateway /Users/*/Library/LaunchAgents/ai.openclaw.*.plist "
                "/Users/*/Library/LaunchAgents/com.openclaw.*.plist 2>/dev/null || true")

    def process(self, output) -> list[tuple[str, str, str]]:
        found = []
        for path in (line.strip() for line in output):
            label = path.rsplit("/", 1)[-1].removesuffix(".plist")
            if path.startswith("/Users/") and path.endswith(".plist") and label not in NOT_GATEWAYS:
                found.append((path.split("/")[2], label, path))
        return found


class CommandLineTools(FactBase):
    """The Xcode Command Line Tools' directory (python3 for the config merge tool), or None."""

    def command(self) -> str:
        return "xcode-select -p 2>/dev/null || true"

    def process(self, output):
        return output[0].strip() if output and output[0].strip() else None


def service_account() -> None:
    """The hidden service account and its group, with a free id below 500."""
    account = host.get_fact(DirectoryUser, user=USER)
    wanted = {"UserShell": "/usr/bin/false", "NFSHomeDirectory": STATE_DIR, "IsHidden": "1"}
    if account is None or any(account.get(key) != value for key, value in wanted.items()):
        uid = int(account["UniqueID"]) if account and account.get("UniqueID", "").isdigit() else free_id(
            host.get_fact(UniqueIds) or set())
        server.shell(name=f"Hidden service account {USER} (UID {uid}, no login shell, home {STATE_DIR})",
                     commands=account_commands(uid))


def install(settings: HostSettings, *, release: str, node_dir: str) -> None:
    if host.get_fact(CommandLineTools) is None:
        raise ControllerError([f"host {host.name}: the Xcode Command Line Tools are missing (the kit's config merge "
                               "tool needs their python3): run `xcode-select --install` on the Mac (Homebrew's "
                               "installer installs them too), then deploy again"])
    # Not there on a fresh Mac (Homebrew lives in /opt/homebrew on Apple silicon).
    for directory in ("/usr/local/sbin", "/usr/local/libexec", "/usr/local/lib/openclaw-kit", f"{PREFIX}/releases"):
        files.directory(name=f"Directory {directory}", path=directory, user="root", group="wheel", mode="755")
    if not host.get_fact(File, path=f"{node_dir}/bin/node"):
        arch = MACOS_ARCHES.get(host.get_fact(Arch))
        server.shell(name=f"Node.js {settings.node_version} (darwin-{arch}, sha256 pinned)",
                     commands=[node_script(settings, arch, node_dir)])
    if not host.get_fact(File, path=f"{release}/.installed"):
        server.shell(
            name=f"Install OpenClaw {settings.openclaw_version}",
            commands=[render("openclaw", "macos/install-release.sh.j2", release=release, node_dir=node_dir,
                             version=settings.openclaw_version, proxy=settings.proxy)],
        )
    template(name=f"CLI wrapper {CLI}", role="openclaw", src="macos/openclaw-kit-cli.j2", dest=CLI, mode="755",
             **cli_data())


def validate_command(*, release: str, config: str) -> str:
    """The command that validates `config` with the OpenClaw of `release`, as the service (the wrapper
    starts itself again through sudo, which drops the environment: the config is an option)."""
    q = shlex.quote
    return f"{q(CLI)} --release {q(release)} --config {q(config)} config validate --json"


def service(settings: HostSettings, *, release: str, node_dir: str, switching: bool, changed: list) -> None:
    gateway_op = template(name=f"Gateway start script {GATEWAY}", role="openclaw", src="macos/openclaw-kit-gateway.j2",
                          dest=GATEWAY, mode="755", port=settings.gateway_port, **cli_data())
    if switching:
        changed = [*changed, server.shell(
            name=f"Switch {CURRENT} to OpenClaw {settings.openclaw_version}",
            commands=[render("openclaw", "macos/switch-release.sh.j2", release=release, current=CURRENT)])]

    # A per-user agent OpenClaw installed earlier gives way to the system daemon.
    for user, label, plist in host.get_fact(UserAgents) or []:
        server.shell(
            name=f"The per-user agent {label} of {user} booted out and disabled; its state copied to {STATE_DIR}",
            commands=[handover_script(user, label, plist)],
        )

    template(name=f"Rotation of the gateway's stdout and stderr logs {NEWSYSLOG}", role="openclaw",
             src="macos/newsyslog.conf.j2", dest=NEWSYSLOG, **newsyslog_data())

    changed = [*changed, gateway_op]
    daemon_op = launchd.daemon(name="The gateway as a LaunchDaemon", label=LABEL, plist=gateway_plist(settings),
                               restart_when=changed)
    server.shell(
        name=f"Wait for {LABEL} to answer /healthz",
        commands=[health_wait_command(settings.gateway_port)],
        _if=any_changed(daemon_op.loaded, *changed),
    )
    if switching:
        server.shell(
            name="Remove releases other than the running one",
            commands=[
                f"find {PREFIX}/releases -mindepth 1 -maxdepth 1 ! -path {release} -exec rm -rf {{}} +",
                f"find {PREFIX} -mindepth 1 -maxdepth 1 -name 'node-v*' ! -path {node_dir} -exec rm -rf {{}} +",
            ],
        )


def free_id(taken: set[int]) -> int:
    for candidate in UID_RANGE:
        if candidate not in taken:
            return candidate
    raise ControllerError([f"host {host.name}: no free user and group id in {UID_RANGE.start}-{UID_RANGE.stop - 1} "
                           f"for the hidden service account {USER}"])


def account_commands(uid: int) -> list[str]:
    group, user = f"/Groups/{USER}", f"/Users/{USER}"
    return [
        f"dscl . -read {group} >/dev/null 2>&1 || dscl . -create {group}",
        f"dscl . -create {group} PrimaryGroupID {uid}",
        f"dscl . -create {group} RealName '{REAL_NAME}'",
        f"dscl . -read {user} >/dev/null 2>&1 || dscl . -create {user}",
        f"dscl . -create {user} UniqueID {uid}",
        f"dscl . -create {user} PrimaryGroupID {uid}",
        f"dscl . -create {user} UserShell /usr/bin/false",
        f"dscl . -create {user} NFSHomeDirectory {STATE_DIR}",
        f"dscl . -create {user} RealName '{REAL_NAME}'",
        f"dscl . -create {user} IsHidden 1",
        f"dscl . -create {user} Password '*'",
    ]


def node_script(settings: HostSettings, arch: str | None, node_dir: str) -> str:
    sha256 = settings.node_sha256 or NODE_DARWIN_SHA256.get((settings.node_version, arch))
    if not sha256:
        raise SettingsError([f"host {host.name}: node_sha256 = None: no pinned checksum is known for Node.js "
                             f"{settings.node_version} (darwin-{arch}); set node_sha256 from the release's "
                             f"SHASUMS256.txt (the line for node-v{settings.node_version}-darwin-{arch}.tar.gz)"])
    name = f"node-v{settings.node_version}-darwin-{arch}.tar.gz"
    return render("openclaw", "macos/install-node.sh.j2", version=settings.node_version, arch=arch, node_dir=node_dir,
                  sha256=sha256, url=f"{settings.node_dist_url}/v{settings.node_version}/{name}",
                  archive=f"{PREFIX}/downloads/{name}", proxy=settings.proxy)


def cli_data() -> dict:
    return dict(service_user=USER, state_dir=STATE_DIR, env_file=ENV_FILE, live_config=LIVE_CONFIG, current=CURRENT)


def handover_script(user: str, label: str, plist: str) -> str:
    return render("openclaw", "macos/user-agent-handover.sh.j2", label=label, user=user, plist=plist,
                  parked_dir=f"/Users/{user}/Library/LaunchAgents-disabled-by-openclaw-kit",
                  user_state=f"/Users/{user}/.openclaw", state_dir=STATE_DIR, service_user=USER)


def newsyslog_data() -> dict:
    return dict(logs=[STDOUT_LOG, STDERR_LOG], owner=USER, count=5, size_kb=10240)


def gateway_plist(settings: HostSettings) -> dict:
    """The LaunchDaemon: the secrets are not in it (the start script reads the 0600 file)."""
    return {
        "Label": LABEL,
        "ProgramArguments": [GATEWAY],
        "UserName": USER,
        "GroupName": USER,
        "RunAtLoad": True,
        # Restarted after a non-zero exit only: the start script turns exit 78 (config error) into 0,
        # so a rejected config stops the gateway as RestartPreventExitStatus=78 does on Linux.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,  # at most one restart per 10 s when it keeps exiting
        "ExitTimeOut": 330,  # SIGKILL only after OpenClaw's own shutdown grace, as TimeoutStopSec on Linux
        # Unset (or Standard, the same per launchd.plist(5)) gets light CPU and I/O throttling; the
        # gateway answers people, so no throttling, like an app.
        "ProcessType": "Interactive",
        "Umask": 0o077,
        "WorkingDirectory": STATE_DIR,
        "EnvironmentVariables": {
            "HOME": STATE_DIR,
            "PATH": f"{CURRENT}/bin:/usr/bin:/bin",
            "OPENCLAW_STATE_DIR": STATE_DIR,
            "OPENCLAW_CONFIG_PATH": LIVE_CONFIG,
            # The kit owns the lifecycle: no self-installed service, no self-update, no downloads, no mDNS.
            "OPENCLAW_SUPERVISOR_MODE": "external",
            "OPENCLAW_SERVICE_REPAIR_POLICY": "external",
            "OPENCLAW_NO_AUTO_UPDATE": "1",
            "OPENCLAW_OFFLINE": "1",
            "OPENCLAW_DISABLE_BONJOUR": "1",
        },
        "StandardOutPath": STDOUT_LOG,
        "StandardErrorPath": STDERR_LOG,
    }


def health_wait_command(port: int) -> str:
    """A bounded wait for GET /healthz on loopback; on failure, the daemon's last stderr lines."""
    return gateway.health_wait_command(port, service=LABEL, recent_logs=f"tail -n 30 {STDERR_LOG}")
