"""Role openclaw: the gateway as a locked-down system service.

Node.js and OpenClaw are pinned and installed side by side per version under /opt/openclaw, owned
by root (the service cannot modify its own code). A new config is validated by the OpenClaw
version that will run it before it replaces the live one, so a rejected config never reaches the
running gateway. A new release is switched to by one script on the host (openclaw-kit-gateway), which
restarts the gateway, waits for /healthz and /readyz, and switches back to the previous release when
the new one does not come up.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.facts.files import File, Link
from pyinfra.facts.server import Arch
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from openclaw_kit import jsonconfig
from openclaw_kit.errors import ControllerError, SettingsError
from openclaw_kit.operations import checked_config, promote_files
from openclaw_kit.packages import install_missing
from openclaw_kit.platform import platform_of
from openclaw_kit.secrets import DIGEST_SALT, EnvFileDigests, changed_names, secret_file
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render, template

USER = "openclaw"
SERVICE = "openclaw-gateway"
STATE_DIR = "/var/lib/openclaw"
LOG_DIR = "/var/log/openclaw"
LOG_FILE = f"{LOG_DIR}/gateway.log"
CONFIG_DIR = "/etc/openclaw"
ENV_FILE = f"{CONFIG_DIR}/gateway.env"
DESIRED_NAME = "openclaw.json"
DESIRED_CONFIG = f"{CONFIG_DIR}/{DESIRED_NAME}"  # rendered from settings, validated before promotion
KIT_STATE_DIR = "/var/lib/openclaw-kit"  # the kit's own working files (candidates, the state copy of a switch)
CONFIG_CANDIDATE_DIR = f"{KIT_STATE_DIR}/openclaw-config-candidate"
LIVE_CONFIG = f"{STATE_DIR}/openclaw.json"  # what the gateway reads; 0600, as OpenClaw expects
# Node's module compile cache for the CLI wrapper's runs (why: the wrapper's template).
COMPILE_CACHE = f"{STATE_DIR}/.cache/node-compile-cache"
PREFIX = "/opt/openclaw"
CURRENT = f"{PREFIX}/current"
CLI = "/usr/local/sbin/openclaw-kit-cli"
GATEWAY_SCRIPT = "/usr/local/sbin/openclaw-kit-gateway"  # switch, restart, health, rollback
MERGE = "/usr/local/lib/openclaw-kit/merge-config.py"
UNIT = f"/etc/systemd/system/{SERVICE}.service"
# Seconds, for /healthz after a restore (role backup); deploys use gateway_start_timeout_seconds (also
# 180 by default). A first start takes 20-40 s here, but 2.5 min was seen on a saturated 2-core
# machine: a small VPS under load must not fail a deploy whose gateway is merely slow to come up.
HEALTH_TIMEOUT = 180

# Pinned checksums of the Node.js builds the kit knows (a node_sha256 setting covers others).
# nodejs-dist: the official release tarballs (SHASUMS256.txt of each release); npm-package: the
# same builds as published to the npm registry (`npm pack node-linux-<arch>@<version>`).
NODE_SHA256 = {
    ("nodejs-dist", "24.21.0", "x64"): "fd8e59d5a511510f6a298afb548f18c7d2b1be404d8b4a27d94fbe49f56cb2d6",
    ("nodejs-dist", "24.21.0", "arm64"): "6ad1325edbdb5649c379b75a237147a666c95d4f9ae8d340fef2d1575d289ad2",
    ("npm-package", "24.21.0", "x64"): "61ecf27ad70afee991b671c28561eb497028294a67d132f9bbaac9ad73f81d3b",
    ("npm-package", "24.22.3", "x64"): "6d747cda21df616c78e9ed4f8a816cbacd25f24c1abb4d9aa26773d000e24bd9",
}
# The npm-package builds carry node only; npm itself comes the same way, pinned.
NPM_VERSION = "11.21.2"
NPM_SHA256 = "8ad8563b81e71b90ef405b140bccf3ba9b5e7884ab210bd49ee4e2f4bc6f61f5"
ARCHES = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}
CACHE = Path.home() / ".cache" / "openclaw-kit"


class Account(FactBase):
    """A local account's home and shell (getent passwd), or None when there is no such account."""

    def command(self, user: str):
        return f"getent passwd {shlex.quote(user)} || true"

    def process(self, output):
        fields = "".join(output).strip().split(":")
        return {"home": fields[5], "shell": fields[6]} if len(fields) == 7 else None


@deploy("openclaw")
def openclaw(settings: HostSettings):
    refuse_plugin_channels(host.name, settings)
    arch = ARCHES.get(host.get_fact(Arch))
    node_dir = f"{PREFIX}/node-v{settings.node_version}"
    release = f"{PREFIX}/releases/openclaw-{settings.openclaw_version}-node-v{settings.node_version}"

    # The service user and its private places.
    # server.user reads every account on the host (0.3 s of a 5 s no-op run); one getent
    # answers whether there is anything for it to do.
    nologin = platform_of(host).nologin
    if host.get_fact(Account, user=USER) != {"home": STATE_DIR, "shell": nologin}:
        server.user(
            name=f"System user {USER}", user=USER, system=True, home=STATE_DIR, shell=nologin, create_home=False
        )
    files.directory(name=f"State directory {STATE_DIR}", path=STATE_DIR, user=USER, group=USER, mode="700")
    files.directory(name=f"Log directory {LOG_DIR}", path=LOG_DIR, user=USER, group=USER, mode="750")
    # Readable by the service's group only: the config references secrets, it does not hold them.
    files.directory(name=f"Config directory {CONFIG_DIR}", path=CONFIG_DIR, user="root", group=USER, mode="750")
    # A rotation is reported by name: compared by salted digests, no value leaves either side.
    # The gateway reads this file only when it starts (systemd's EnvironmentFile): measured on
    # 2026.9.6, `openclaw secrets reload` answers ok and keeps the old values, so a changed
    # file restarts the gateway below.
    secret_values = settings.secrets()
    rotated = changed_names(host.get_fact(EnvFileDigests, path=ENV_FILE, salt=DIGEST_SALT) or {}, secret_values)
    secrets_op = secret_file(
        name=f"Secrets file {ENV_FILE}" + (f" (changed: {', '.join(rotated)})" if rotated else ""),
        path=ENV_FILE,
        values=secret_values,
        user=USER,
        group=USER,
        private_dir=f"/tmp/openclaw-kit-{host.data.get('ssh_user') or 'root'}",
    )

    # Node.js and OpenClaw, pinned, in versioned directories.
    install_missing(["python3"])  # for the config merge tool
    # Made explicitly: a `mkdir -p` below would give it the SSH session's umask, 027 on Ubuntu
    # (login.defs), and the service user could not reach its Node.js and OpenClaw any more.
    files.directory(name=f"Install prefix {PREFIX}", path=PREFIX, mode="755")
    install_node(settings, arch, node_dir)
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
    switching = (host.get_fact(Link, path=CURRENT) or {}).get("link_target") != release

    # The config: rendered, validated by the release that will run it, then merged into the live one.
    files.put(name=f"Config merge tool {MERGE}", src=jsonconfig.__file__, dest=MERGE, mode="755")
    config = render(
        "openclaw",
        "openclaw.json5.j2",
        settings=settings,
        channels=channel_config(settings),
        log_file=LOG_FILE,
        live_config=LIVE_CONFIG,
    )
    sections = jsonconfig.load_commented(config)
    merged = f"{LIVE_CONFIG}.kit-candidate"
    q = shlex.quote
    promote_op = checked_config(
        name=f"Config {DESIRED_CONFIG}: validated by the OpenClaw that will run it, then made live",
        files={DESIRED_NAME: config},
        live_dir=CONFIG_DIR,
        candidate_dir=CONFIG_CANDIDATE_DIR,
        group=USER,
        mode="640",
        check=(
            f"{q(MERGE)} {q(f'{CONFIG_CANDIDATE_DIR}/{DESIRED_NAME}')} {q(LIVE_CONFIG)} {q(merged)} && "
            f"chown {USER}:{USER} {q(merged)} && {{ OPENCLAW_CONFIG_PATH={q(merged)} {q(CLI)} --release {q(release)} "
            f"config validate --json || {{ rm -f {q(merged)}; exit 1; }}; }}"
        ),
        rejected="OpenClaw rejected the new config (its message is above); the running gateway keeps the old one",
        promote=(f"mv -f {q(merged)} {q(LIVE_CONFIG)} && "
                 f"{promote_files([DESIRED_NAME], CONFIG_DIR, CONFIG_CANDIDATE_DIR)}"),
        # The live config is OpenClaw's too: the kit's sections of it are compared, not the whole file.
        force=switching
        or host.get_fact(OwnedConfigDigest, path=LIVE_CONFIG, sections=sorted(sections)) != jsonconfig.digest(sections),
    )
    gateway = dict(service=SERVICE, current=CURRENT, prefix=PREFIX, state_dir=STATE_DIR, work_dir=KIT_STATE_DIR,
                   port=settings.gateway_port, timeout=settings.gateway_start_timeout_seconds)
    template(name=f"Gateway lifecycle script {GATEWAY_SCRIPT}", role="openclaw", src="openclaw-kit-gateway.j2",
             dest=GATEWAY_SCRIPT, mode="750", **gateway)

    # The service.
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
            _if=any_changed(secrets_op, promote_op, unit_op),
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
    sha256 = settings.node_sha256 or NODE_SHA256.get((settings.node_source, settings.node_version, arch))
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
            commands=[
                f"umask 022 && rm -rf {PREFIX}/npm-{NPM_VERSION} && mkdir -p {PREFIX}/npm-{NPM_VERSION} && "
                f"tar -xzf {npm_archive} -C {PREFIX}/npm-{NPM_VERSION} --strip-components=1 --no-same-owner"
            ],
        )
    server.shell(
        name=f"Unpack Node.js {settings.node_version}",
        commands=[
            # umask: the service user reads what root unpacks, whatever login.defs' UMASK (027) gives sessions.
            f"umask 022 && echo '{sha256}  {archive}' | sha256sum --check --quiet && rm -rf {node_dir}.partial && "
            f"mkdir -p {node_dir}.partial && tar -xf {archive} -C {node_dir}.partial --strip-components=1 "
            f"--no-same-owner && mv -T {node_dir}.partial {node_dir}"
        ],
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


def channel_config(settings: HostSettings) -> dict:
    """settings.channels in OpenClaw's own keys."""
    out = {}
    telegram = settings.channels.telegram
    if telegram is not None:
        out["telegram"] = {
            "enabled": telegram.enabled,
            "botToken": f"${{{telegram.bot_token.name}}}",
            "dmPolicy": telegram.dm_policy,
            # An open policy is only valid with the wildcard; the settings opt-in was checked.
            "allowFrom": ["*"] if telegram.dm_policy == "open" else telegram.allow_from,
            "groupPolicy": telegram.group_policy,
            "groupAllowFrom": telegram.group_allow_from,
        }
    return out


def refuse_plugin_channels(host_name: str, settings: HostSettings) -> None:
    # Slack and WhatsApp are OpenClaw plugins now; a config naming them without the plugin
    # installed fails OpenClaw's audit. Refuse before any change rather than deploy that.
    unsupported = [name for name in ("slack", "whatsapp") if getattr(settings.channels, name) is not None]
    if unsupported:
        raise SettingsError(
            [
                f"host {host_name}: channels.{name} = {{...}}: the {name} channel needs the @openclaw/{name} plugin, "
                "which this version of the kit does not install yet"
                for name in unsupported
            ]
        )


def health_wait(port: int) -> str:
    """A bounded wait for GET /healthz on loopback; on failure, the gateway's last log lines."""
    probe = (
        f"{CURRENT}/bin/node -e \"fetch('http://127.0.0.1:{port}/healthz')"
        '.then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"'
    )
    return (
        f"for i in $(seq {HEALTH_TIMEOUT}); do {probe} && exit 0; sleep 1; done; "
        f"echo '{SERVICE} did not answer /healthz within {HEALTH_TIMEOUT}s' >&2; "
        f"journalctl -u {SERVICE} -n 30 --no-pager >&2; exit 1"
    )


class OwnedConfigDigest(FactBase):
    """sha256 of the sections of the live config that the kit owns (no values leave the host), by the
    merge tool (openclaw_kit/jsonconfig.py); None before the tool is on the host."""

    def command(self, path: str, sections: list[str]) -> str:
        q = shlex.quote
        digest = f"{q(MERGE)} --digest {q(path)} {' '.join(map(q, sections))} 2>/dev/null || true"
        return f"if [ -x {q(MERGE)} ]; then {digest}; fi"

    def process(self, output):
        return output[0] if output else None
