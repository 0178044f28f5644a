"""Every script and Python file the kit runs on a host, found by itself, rendered with representative data.

Found, not listed: a template is a shell script when its name ends in .sh.j2 (a fragment pyinfra runs
with `sh -c`) or its first line is a sh/bash shebang, a Python file when that line names python; a
module of openclaw_kit/ is run on a host when its first line is the host's `#!/usr/bin/python3`
(jsonconfig.py, put there with files.put), on every platform. Which platforms may run a template
follows from the platform table: those that have its role, and of them only the family whose
directory it sits in (templates/<role>/<family>/); one in the role's own directory counts for all.
A directory of the plumbing's named after a service manager (templates/launchd/) counts for the
platforms that have it; any other (templates/operations/) for all.

The samples give a template the data its role renders it with (or the role's own function that
renders it), one entry per variant worth checking; a template without one is rendered with
placeholders, so a new template is checked from the day it is added (should placeholders make it
fail, give it a sample).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import ChainableUndefined, Environment, meta

from openclaw_kit import gateway, operations
from openclaw_kit import launchd as kit_launchd
from openclaw_kit.layout import GATEWAY_CONFIG_MERGE, GATEWAY_ENV_FILE, JOB_METRICS_PREFIX, TEXTFILE_DIR
from openclaw_kit.platform import PLATFORMS
from openclaw_kit.settings import validate_hosts
from openclaw_kit.templates import TEMPLATES, render, render_command
from roles import backup, fail2ban, logs, nginx, tls, wireguard
from roles.base import macos as base_macos
from roles.base.sshd import SSHD_CANDIDATE, SSHD_CONFIG, SSHD_DROPIN_DIR, SSHD_DROPIN_NAME
from roles.firewall import nftables, pf
from roles.openclaw import launchd
from roles.openclaw import systemd as openclaw
from tests.unit.fake_host import ENV
from tests.unit.test_backup import S3, SFTP
from tests.unit.test_backup import settings as backup_settings
from tests.unit.test_wireguard import mesh_host

REPO = TEMPLATES.parent
FAMILIES = {platform.family for platform in PLATFORMS.values()}
SHEBANG = re.compile(r"#!\s*(?:/usr/bin/env\s+|\S*/)(sh|bash|python3?)(?:\s|$)")


@dataclass(frozen=True)
class HostFile:
    path: Path  # in the checkout
    kind: str  # "sh", "bash" or "python"
    families: frozenset[str]  # the platform families that run it

    @property
    def name(self) -> str:
        return str(self.path.relative_to(REPO))

    @property
    def on_macos(self) -> bool:
        return "macos" in self.families


def _kind(path: Path) -> str | None:
    if path.name.endswith(".sh.j2"):
        return "sh"
    first = path.read_text().split("\n", 1)[0]
    match = SHEBANG.match(first)
    if not match:
        return None
    return "python" if match.group(1).startswith("python") else match.group(1)


def _families(relative: Path) -> frozenset[str]:
    role, *directories = relative.parts[:-1]
    # templates/launchd/ and templates/operations/ are no role's but the plumbing's (openclaw_kit/launchd.py,
    # operations.py): a service manager's go to the platforms that have it, the rest to every platform.
    having_role = ({platform.family for platform in PLATFORMS.values() if role in platform.roles}
                   or {platform.family for platform in PLATFORMS.values() if role == platform.service_manager}
                   or FAMILIES)
    placed = [directory for directory in directories if directory in FAMILIES]
    return frozenset(having_role & set(placed) if placed else having_role)


def host_files() -> list[HostFile]:
    found = []
    for path in sorted(TEMPLATES.rglob("*.j2")):
        kind = _kind(path)
        if kind:
            found.append(HostFile(path, kind, _families(path.relative_to(TEMPLATES))))
    for path in sorted((REPO / "openclaw_kit").rglob("*.py")):
        if path.read_text().startswith("#!/usr/bin/python3\n"):
            found.append(HostFile(path, "python", frozenset(FAMILIES)))
    return found


class Placeholder(ChainableUndefined):
    """A value the data did not give: a word in the text, false in a test, empty in a loop."""

    def __str__(self) -> str:
        return "placeholder"


@functools.cache
def _samples() -> dict[str, dict[str, dict]]:
    mesh = wireguard.apply_data(validate_hosts({"gw1": mesh_host("10.99.0.1")}, ENV)["gw1"])
    nginx_servers = [f"openclaw-kit/{name}" for name in nginx.SERVERS]
    release, node_dir = "/opt/openclaw/releases/openclaw-2026.9.6-node-v24.21.0", "/opt/openclaw/node-v24.21.0"
    install = dict(release=release, node_dir=node_dir, version="2026.9.6")
    sshd = dict(candidate_dir=SSHD_CANDIDATE, dropin_dir=SSHD_DROPIN_DIR, dropin_name=SSHD_DROPIN_NAME,
                main_config=SSHD_CONFIG, sshd="/usr/sbin/sshd", port=22, ssh_user="deploy")
    return {
        "backup/openclaw-kit-offsite-backup.j2": {"sftp": backup.offsite_data(backup_settings(SFTP))},
        "backup/openclaw-kit-restic.j2": {"sftp": backup.restic_data(backup_settings(SFTP).offsite_backup),
                                          "s3": backup.restic_data(backup_settings(S3).offsite_backup)},
        "backup/openclaw-kit-restore.j2": {"sftp": backup.restore_data(backup_settings(SFTP))},
        "base/sshd-check.sh.j2": {"groups": {**sshd, "allow_groups": ["sshusers"]}, "no groups": {**sshd, "allow_groups": []}},
        "base/umask.sh.j2": {"default": dict(umask="027")},
        "base/macos/power-settings.sh.j2": {"default": lambda: base_macos.power_script(base_macos.POWER)},
        "fail2ban/check-candidate.sh.j2": {"default": fail2ban.check_command},
        "firewall/openclaw-kit-firewall-apply.j2": {"default": nftables.script_data()},
        "firewall/macos/openclaw-kit-firewall-apply.j2": {"default": pf.script_data()},
        "firewall/macos/pf-conf-reference.sh.j2": {"default": dict(pf_conf=pf.PF_CONF, lines=pf.PF_CONF_LINES)},
        "launchd/reload.sh.j2": {"firewall boot job": lambda: kit_launchd.reload_script(pf.BOOT_LABEL, pf.boot_plist())},
        "logs/openclaw-kit-backup.j2": {"default": logs.backup_data(retention_days=7)},
        "logs/openclaw-kit-job.j2": {"default": dict(audit_log=logs.AUDIT_LOG, env_file=GATEWAY_ENV_FILE, timeout=logs.JOB_TIMEOUT,
                                                     textfile_dir=TEXTFILE_DIR, metrics_prefix=JOB_METRICS_PREFIX)},
        "openclaw/install-release.sh.j2": {
            "proxy": {**install, "npm": f"{node_dir}/bin/npm", "proxy": "http://proxy.example:3128"},
            "no proxy": {**install, "npm": f"{node_dir}/bin/npm", "proxy": None}},
        "openclaw/openclaw-kit-cli.j2": {"default": openclaw.cli_data()},
        "openclaw/openclaw-kit-gateway.j2": {"default": dict(
            service=openclaw.SERVICE, current=openclaw.CURRENT, prefix=openclaw.PREFIX, state_dir=openclaw.STATE_DIR,
            work_dir=openclaw.KIT_STATE_DIR, port=18789, timeout=180)},
        "openclaw/macos/install-node.sh.j2": {"default": dict(
            version="24.21.0", arch="arm64", node_dir=node_dir, sha256="b" * 64, proxy="http://proxy.example:3128",
            url="https://nodejs.org/dist/v24.21.0/node-v24.21.0-darwin-arm64.tar.gz",
            archive="/opt/openclaw/downloads/node-v24.21.0-darwin-arm64.tar.gz")},
        "openclaw/macos/install-release.sh.j2": {"proxy": {**install, "proxy": "http://proxy.example:3128"},
                                                 "no proxy": {**install, "proxy": None}},
        "openclaw/macos/openclaw-kit-cli.j2": {"default": launchd.cli_data()},
        "openclaw/macos/openclaw-kit-gateway.j2": {"default": dict(port=18789, **launchd.cli_data())},
        "openclaw/macos/switch-release.sh.j2": {"default": dict(release=release, current=launchd.CURRENT)},
        "openclaw/macos/user-agent-handover.sh.j2": {"default": lambda: launchd.handover_script(
            "admin", launchd.LABEL, "/Users/admin/Library/LaunchAgents/ai.openclaw.gateway.plist")},
        "nginx/check-candidate.sh.j2": {"default": lambda: nginx.check_command(["nginx.conf", *nginx_servers])},
        "nginx/promote-candidate.sh.j2": {"default": nginx.promote_command},
        "openclaw/config-check.sh.j2": {"default": lambda: render_command(
            "openclaw", "config-check.sh.j2", merge=GATEWAY_CONFIG_MERGE, desired=f"{openclaw.CONFIG_CANDIDATE_DIR}/x.json5",
            live=openclaw.LIVE_CONFIG, merged=f"{openclaw.LIVE_CONFIG}.kit-candidate", user=openclaw.USER,
            validate=openclaw.validate_command(release=release, config=f"{openclaw.LIVE_CONFIG}.kit-candidate"))},
        "openclaw/health-wait.sh.j2": {"linux": lambda: gateway.systemd_health_wait_command(18789), "macos": lambda: launchd.health_wait_command(18789)},
        "openclaw/unpack-node.sh.j2": {"default": dict(sha256="a" * 64, node_dir=node_dir,
                                                       archive="/opt/openclaw/downloads/node-v24.21.0-linux-x64.tar.xz")},
        "openclaw/unpack-npm.sh.j2": {"default": dict(archive="/opt/openclaw/downloads/npm-11.6.2.tgz",
                                                      npm_dir="/opt/openclaw/npm-11.6.2")},
        "operations/check-then-promote.sh.j2": {"sshd": lambda: operations.check_then_promote_commands(
            "sshd -t -f /etc/ssh/sshd_config", "sshd rejected it", "true")[0]},
        "operations/restart.sh.j2": {"default": lambda: operations.restart_command("systemd-journald.service")},
        "operations/restart-in-sandbox.sh.j2": {"default": lambda: operations.restart_in_sandbox_commands("nginx.service")[0]},
        "tls/deploy-hook.j2": {"default": tls.script_data(acme_ca_file=None)},
        "tls/renew-certificates.j2": {"own CA": tls.script_data(acme_ca_file="/etc/ssl/ca.pem"),
                                      "public CA": tls.script_data(acme_ca_file=None)},
        "wireguard/apply.sh.j2": {"default": mesh},
        "wireguard/make-key.sh.j2": {"first key": dict(key_path=mesh["key_path"]),
                                     "rotation": dict(key_path=mesh["key_path"], replace=True)},
    }


def renderings(host_file: HostFile) -> dict[str, str]:
    """The file's text as placed on a host, per variant of its data; the file itself when it is no template."""
    if host_file.path.suffix != ".j2":
        return {"as is": host_file.path.read_text()}
    role, src = host_file.path.relative_to(TEMPLATES).parts[0], "/".join(host_file.path.relative_to(TEMPLATES).parts[1:])
    variants = _samples().get(f"{role}/{src}")
    if variants is None:
        parser = Environment()
        parser.filters["quote"] = str  # parsed only, to find the names the data must give
        source = parser.parse(host_file.path.read_text())
        variants = {"placeholders": {name: Placeholder(name=name) for name in meta.find_undeclared_variables(source)}}
    return {variant: data() if callable(data) else render(role, src, **data) for variant, data in variants.items()}


# `python3 -c '...'` (single-quoted, so the shell passes it verbatim) and `python3 - ... <<'END'`.
PYTHON_ARGUMENT = re.compile(r"python3 -c '([^']*)'")
PYTHON_HEREDOC = re.compile(r"python3 -[^\n]*<<-?'(\w+)'\n(.*?)\n\1\n", re.DOTALL)


def embedded_python(text: str) -> list[str]:
    """The Python programs a shell script hands to python3."""
    return PYTHON_ARGUMENT.findall(text) + [body for _, body in PYTHON_HEREDOC.findall(text)]


def sampled_templates() -> set[str]:
    return set(_samples())
