"""Role openclaw: the gateway as a locked-down system service.

Node.js and OpenClaw are pinned and installed side by side per version under /opt/openclaw, owned
by root (the service cannot modify its own code). A new config is validated by the OpenClaw
version that will run it before it replaces the live one, so a rejected config never reaches the
running gateway; a rotated secret is named in the output, never shown. What this module does is the
same on every platform; the service account, the install and the service itself are the platform's
service manager's: systemd.py (Linux: a systemd unit, switched and rolled back by
openclaw-kit-gateway) or launchd.py (macOS: the LaunchDaemon ai.openclaw.gateway).
"""

from __future__ import annotations

import shlex
from typing import Protocol, runtime_checkable

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.facts.files import Link
from pyinfra.operations import files

from openclaw_kit import jsonconfig
from openclaw_kit.errors import SettingsError
from openclaw_kit.layout import GATEWAY_CONFIG_DIR as CONFIG_DIR
from openclaw_kit.layout import GATEWAY_CONFIG_MERGE as MERGE
from openclaw_kit.layout import GATEWAY_CURRENT as CURRENT
from openclaw_kit.layout import GATEWAY_DESIRED_CONFIG as DESIRED_CONFIG
from openclaw_kit.layout import GATEWAY_DESIRED_NAME as DESIRED_NAME
from openclaw_kit.layout import GATEWAY_ENV_FILE as ENV_FILE
from openclaw_kit.layout import GATEWAY_LOG_DIR as LOG_DIR
from openclaw_kit.layout import GATEWAY_LOG_FILE as LOG_FILE
from openclaw_kit.layout import GATEWAY_PREFIX as PREFIX
from openclaw_kit.operations import checked_config, promote_files_command
from openclaw_kit.platform import platform_of
from openclaw_kit.secrets import DIGEST_SALT, EnvFileDigests, changed_names, secret_file
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render, render_command
from roles.openclaw import launchd, systemd


@runtime_checkable
class ServiceManager(Protocol):
    """What a service manager's backend module provides: the service account, the install, the service."""

    USER: str
    STATE_DIR: str
    LIVE_CONFIG: str  # what the gateway reads
    CONFIG_CANDIDATE_DIR: str

    def service_account(self) -> None: ...

    def install(self, settings: HostSettings, *, release: str, node_dir: str) -> None: ...

    def validate_command(self, *, release: str, config: str) -> str:
        """The command that validates `config` with the OpenClaw of `release`, as the service."""

    def service(self, settings: HostSettings, *, release: str, node_dir: str, switching: bool,
                changed: list) -> None: ...


# By the platform table's service_manager.
BACKENDS: dict[str, ServiceManager] = {"systemd": systemd, "launchd": launchd}


@deploy("openclaw")
def openclaw(settings: HostSettings):
    refuse_plugin_channels(host.name, settings)
    backend = BACKENDS[platform_of(host).service_manager]
    node_dir = f"{PREFIX}/node-v{settings.node_version}"
    release = f"{PREFIX}/releases/openclaw-{settings.openclaw_version}-node-v{settings.node_version}"
    user = backend.USER

    # The service account and its private places.
    backend.service_account()
    files.directory(name=f"State directory {backend.STATE_DIR}", path=backend.STATE_DIR, user=user, group=user,
                    mode="700")
    files.directory(name=f"Log directory {LOG_DIR}", path=LOG_DIR, user=user, group=user, mode="750")
    # Readable by the service's group only: the config references secrets, it does not hold them.
    files.directory(name=f"Config directory {CONFIG_DIR}", path=CONFIG_DIR, user="root", group=user, mode="750")
    # A rotation is reported by name: compared by salted digests, no value leaves either side.
    # The gateway reads this file only when it starts: measured on 2026.9.6 (Linux), `openclaw secrets
    # reload` answers ok and keeps the old values, so a changed file restarts the gateway (backend.service).
    secret_values = settings.secrets()
    rotated = changed_names(host.get_fact(EnvFileDigests, path=ENV_FILE, salt=DIGEST_SALT) or {}, secret_values)
    secrets_op = secret_file(
        name=f"Secrets file {ENV_FILE}" + (f" (changed: {', '.join(rotated)})" if rotated else ""),
        path=ENV_FILE,
        values=secret_values,
        user=user,
        group=user,
        private_dir=f"/tmp/openclaw-kit-{host.data.get('ssh_user') or 'root'}",
    )

    # Node.js and OpenClaw, pinned, in versioned directories, and the CLI wrapper.
    backend.install(settings, release=release, node_dir=node_dir)
    switching = (host.get_fact(Link, path=CURRENT) or {}).get("link_target") != release

    # The config: rendered, validated by the release that will run it, then merged into the live one.
    files.put(name=f"Config merge tool {MERGE}", src=jsonconfig.__file__, dest=MERGE, mode="755")
    config = render("openclaw", "openclaw.json5.j2", settings=settings, channels=channel_config(settings),
                    log_file=LOG_FILE, live_config=backend.LIVE_CONFIG)
    sections = jsonconfig.load_commented(config)
    candidate_dir = backend.CONFIG_CANDIDATE_DIR
    live, merged = backend.LIVE_CONFIG, f"{backend.LIVE_CONFIG}.kit-candidate"
    q = shlex.quote
    promote_op = checked_config(
        name=f"Config {DESIRED_CONFIG}: validated by the OpenClaw that will run it, then made live",
        files={DESIRED_NAME: config},
        live_dir=CONFIG_DIR,
        candidate_dir=candidate_dir,
        group=user,
        mode="640",
        check=render_command(
            "openclaw", "config-check.sh.j2", merge=MERGE, desired=f"{candidate_dir}/{DESIRED_NAME}", live=live,
            merged=merged, user=user, validate=backend.validate_command(release=release, config=merged),
        ),
        rejected="OpenClaw rejected the new config (its message is above); the running gateway keeps the old one",
        promote=f"mv -f {q(merged)} {q(live)} && {promote_files_command([DESIRED_NAME], CONFIG_DIR, candidate_dir)}",
        # The live config is OpenClaw's too: the kit's sections of it are compared, not the whole file.
        force=switching
        or host.get_fact(OwnedConfigDigest, path=live, sections=sorted(sections)) != jsonconfig.digest(sections),
    )

    # The service: (re)started for new code, config or secrets, and healthy before the deploy goes on.
    backend.service(settings, release=release, node_dir=node_dir, switching=switching, changed=[secrets_op, promote_op])


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


class OwnedConfigDigest(FactBase):
    """sha256 of the sections of the live config that the kit owns (no values leave the host), by the
    merge tool (openclaw_kit/jsonconfig.py); None before the tool is on the host."""

    def command(self, path: str, sections: list[str]) -> str:
        q = shlex.quote
        digest = f"{q(MERGE)} --digest {q(path)} {' '.join(map(q, sections))} 2>/dev/null || true"
        return f"if [ -x {q(MERGE)} ]; then {digest}; fi"

    def process(self, output):
        return output[0] if output else None
