"""Role openclaw on Linux: the gateway as the systemd service openclaw-gateway (roles/openclaw/__init__.py
holds what every platform shares: directories, secrets, the config gate).

The service account `openclaw` (a system user, no login shell). Node.js from the official tarball
or the npm registry, sha256 pinned. A new release is switched to by one script on the host
(openclaw-kit-gateway), which restarts the gateway, waits for /healthz and /readyz, and switches back
to the previous release when the new one does not come up.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import File
from pyinfra.facts.server import Arch
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from openclaw_kit.errors import ControllerError, SettingsError
from openclaw_kit.layout import GATEWAY_CLI as CLI
from openclaw_kit.layout import GATEWAY_CURRENT as CURRENT
from openclaw_kit.layout import GATEWAY_ENV_FILE as ENV_FILE
from openclaw_kit.layout import GATEWAY_LIVE_CONFIG as LIVE_CONFIG
from openclaw_kit.layout import GATEWAY_LOG_DIR as LOG_DIR
from openclaw_kit.layout import GATEWAY_PREFIX as PREFIX
from openclaw_kit.layout import GATEWAY_SERVICE as SERVICE
from openclaw_kit.layout import GATEWAY_STATE_DIR as STATE_DIR
from openclaw_kit.layout import GATEWAY_USER as USER
from openclaw_kit.layout import KIT_STATE_DIR
from openclaw_kit.packages import install_missing
from openclaw_kit.pins import NODE_LINUX_SHA256, NPM_SHA256, NPM_VERSION
from openclaw_kit.platform import platform_of
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render, render_command, template

CONFIG_CANDIDATE_DIR = f"{KIT_STATE_DIR}/openclaw-config-candidate"
# Node's module compile cache for the CLI wrapper's runs (why: the wrapper's template).
COMPILE_CACHE = f"{STATE_DIR}/.cache/node-compile-cache"
GATEWAY_SCRIPT = "/usr/local/sbin/openclaw-kit-gateway"  # switch, restart, health, rollback
UNIT = f"/etc/systemd/system/{SERVICE}.service"

ARCHES = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}
CACHE = Path.home() / ".cache" / "openclaw-kit"


class Account(FactBase):
    """A local account's home and shell (getent passwd), or None when there is no such account."""

    def command(self, user: str):
        return f"getent passwd {shlex.quote(user)} || true"

    def process(self, output):
        fields = "".join(output).strip().split(":")
        return {"home": fields[5], "shell": fields[6]} if len(fields) == 7 else None


def service_account() -> None:
    # server.user reads every account on the host (0.3 s of a 5 s no-op run); one getent
    # answers whether there is anything for it to do.
    nologin = platform_of(host).nologin
    if host.get_fact(Account, user=USER) != {"home": STATE_DIR, "shell": nologin}:
        server.user(
            name=f"System user {USER}", user=USER, system=True, home=STATE_DIR, shell=nologin, create_home=False
        )


def install(settings: HostSettings, *, release: str, node_dir: str) -> None:
    install_missing(["python3"])  # for the config merge tool
    # Made explicitly: a `mkdir -p` below would give it the SSH session's umask, 027 on Ubuntu
    # (login.defs), and the service user could not reach its Node.js and OpenClaw any more.
    files.directory(name=f"Install prefix {PREFIX}", path=PREFIX, mode="755")
    install_node(settings, ARCHES.get(host.get_fact(Arch)), node_dir)
    npm = (
        f"{node_dir}/bin/npm"
        if settings.node_source == "nodejs-dist"
        else f"{node_dir}/bin/node {PREFIX}/npm-{NPM_VERSION}/bin/npm-cli.js"
    )
    if not host.get_fact(File, path=f"{release}/.installed"):
        server.shell(
            name=f"Install OpenClaw {settings.openclaw_version}",
            commands=[
                install_script(
                    release=release, node_dir=node_dir, npm=npm, version=settings.openclaw_version, proxy=settings.proxy
                )
            ],
        )
    template(name=f"CLI wrapper {CLI}", role="openclaw", src="openclaw-kit-cli.j2", dest=CLI, mode="750", **cli_data())


def validate_command(*, release: str, config: str) -> str:
    """The command that validates `config` with the OpenClaw of `release`, as the service."""
    q = shlex.quote
    return f"OPENCLAW_CONFIG_PATH={q(config)} {q(CLI)} --release {q(release)} config validate --json"


def service(settings: HostSettings, *, release: str, node_dir: str, switching: bool, changed: list) -> None:
    gateway = dict(service=SERVICE, current=CURRENT, prefix=PREFIX, state_dir=STATE_DIR, work_dir=KIT_STATE_DIR,
                   port=settings.gateway_port, timeout=settings.gateway_start_timeout_seconds)
    template(name=f"Gateway lifecycle script {GATEWAY_SCRIPT}", role="openclaw", src="openclaw-kit-gateway.j2",
             dest=GATEWAY_SCRIPT, mode="750", **gateway)
    unit_op = template(name=f"Unit {UNIT}", role="openclaw", src="openclaw-gateway.service.j2", dest=UNIT,
                       port=settings.gateway_port, log_dir=LOG_DIR, **cli_data())
    systemd.daemon_reload(name="Reload systemd for the new unit", _if=unit_op.did_change)
    if switching:
        # One script on the host: switch, restart, wait for health, and on failure switch back and fail
        # the deploy; the previous release is removed only once the new one is healthy.
        server.shell(
            name=f"Switch to OpenClaw {settings.openclaw_version} on Node.js {settings.node_version}, "
                 "rolled back unless healthy",
            commands=[f"{GATEWAY_SCRIPT} switch {shlex.quote(release)}"],
        )
    else:
        # Restart first, then ensure running: a stopped gateway is started by the second.
        server.shell(
            name=f"Restart {SERVICE} for its new config or secrets, wait for health",
            commands=[f"{GATEWAY_SCRIPT} restart"],
            _if=any_changed(*changed, unit_op),
        )
    running_op = systemd.service(
        name=f"{SERVICE} enabled and running", service=f"{SERVICE}.service", running=True, enabled=True
    )
    server.shell(
        name=f"Wait for {SERVICE} to answer /healthz and /readyz",
        commands=[f"{GATEWAY_SCRIPT} wait"],
        _if=running_op.did_change,
    )


def cli_data() -> dict:
    """What the CLI wrapper and the unit need to run OpenClaw as the service."""
    return dict(service_user=USER, state_dir=STATE_DIR, env_file=ENV_FILE, live_config=LIVE_CONFIG, current=CURRENT,
                compile_cache=COMPILE_CACHE)


def install_script(*, release: str, node_dir: str, npm: str, version: str, proxy: str | None) -> str:
    return render(
        "openclaw", "install-release.sh.j2", release=release, node_dir=node_dir, npm=npm, version=version, proxy=proxy
    )


def install_node(settings: HostSettings, arch: str | None, node_dir: str) -> None:
    """Node.js from the configured source, checked against a pinned sha256, in its own directory."""
    if host.get_fact(File, path=f"{node_dir}/bin/node"):
        return
    if arch is None:
        raise ControllerError(
            [
                f"host {host.name}: architecture = {host.get_fact(Arch)!r}: "
                "the kit installs Node.js for x86_64 and aarch64 only"
            ]
        )
    sha256 = settings.node_sha256 or NODE_LINUX_SHA256.get((settings.node_source, settings.node_version, arch))
    if not sha256:
        raise SettingsError(
            [
                f"host {host.name}: node_sha256 = None: "
                f"no pinned checksum is known for Node.js {settings.node_version} "
                f"({settings.node_source}, {arch}); set node_sha256 from the release's SHASUMS256.txt"
            ]
        )
    downloads = f"{PREFIX}/downloads"
    files.directory(name=f"Downloads {downloads}", path=downloads, mode="755")
    if settings.node_source == "nodejs-dist":
        install_missing(["curl", "xz-utils"])
        archive = f"{downloads}/node-v{settings.node_version}-linux-{arch}.tar.xz"
        files.download(
            name=f"Download Node.js {settings.node_version}",
            src=f"{settings.node_dist_url}/v{settings.node_version}/node-v{settings.node_version}-linux-{arch}.tar.xz",
            dest=archive,
            sha256sum=sha256,
            proxy=settings.proxy,
        )
    else:
        archive = f"{downloads}/node-linux-{arch}-{settings.node_version}.tgz"
        files.put(
            name=f"Upload Node.js {settings.node_version}",
            src=str(npm_pack(f"node-linux-{arch}@{settings.node_version}", sha256)),
            dest=archive,
        )
        npm_archive = f"{downloads}/npm-{NPM_VERSION}.tgz"
        files.put(
            name=f"Upload npm {NPM_VERSION}", src=str(npm_pack(f"npm@{NPM_VERSION}", NPM_SHA256)), dest=npm_archive
        )
        server.shell(
            name=f"Unpack npm {NPM_VERSION}",
            commands=[render_command("openclaw", "unpack-npm.sh.j2", archive=npm_archive,
                                     npm_dir=f"{PREFIX}/npm-{NPM_VERSION}")],
        )
    server.shell(
        name=f"Unpack Node.js {settings.node_version}",
        commands=[render_command("openclaw", "unpack-node.sh.j2", sha256=sha256, archive=archive, node_dir=node_dir)],
    )


_packed: dict[str, Path] = {}


def npm_pack(spec: str, sha256: str) -> Path:
    """A package tarball fetched once on the controller with `npm pack`, refused unless its sha256 matches."""
    if spec in _packed:
        return _packed[spec]
    CACHE.mkdir(parents=True, exist_ok=True)
    name, _, version = spec.rpartition("@")
    tarball = CACHE / f"{name.replace('/', '-').lstrip('@')}-{version}.tgz"
    if not tarball.is_file() or _sha256(tarball) != sha256:
        run = subprocess.run(
            ["npm", "pack", "--silent", "--pack-destination", str(CACHE), spec], capture_output=True, text=True
        )
        if run.returncode != 0:
            raise ControllerError([f"controller: npm pack {spec} failed: {run.stderr.strip()[-500:]}"])
    if _sha256(tarball) != sha256:
        actual = _sha256(tarball)
        tarball.unlink()
        raise ControllerError([f"controller: {spec} has sha256 {actual}, not the pinned {sha256}: refusing it"])
    _packed[spec] = tarball
    return tarball


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
