"""Role audit: auditd records every change to the kit's files, wherever the kernel lets it run.

Writes and attribute changes (`-p wa`) to the gateway's config and secrets, sshd's config, the
firewall's rulesets and cron, each under a key of its own (`ausearch -k openclaw-kit-sshd`). Runs
after the roles that create those files; a watched path whose directory exists is watched even
before the file does. A container shares the kernel of the machine that runs it, whose audit
system it may not configure: there (and on a kernel booted with audit=0) the role says so once
and changes nothing.
"""

from __future__ import annotations

import io

from pyinfra import host, logger
from pyinfra.api import FactBase, deploy
from pyinfra.operations import files, server, systemd

from openclaw_kit.facts import Container
from openclaw_kit.layout import (
    GATEWAY_CONFIG_DIR,
    GATEWAY_LIVE_CONFIG,
    KIT_CONFIG_DIR,
    NFT_CONF,
    NFT_DIR,
    SSHD_CONFIG,
    SSHD_DROPIN_DIR,
)
from openclaw_kit.packages import install_missing
from openclaw_kit.settings import HostSettings
from openclaw_kit.templates import render

RULES = "/etc/audit/rules.d/openclaw-kit.rules"
# (path, key, why): no trailing slashes, as `auditctl -l` lists them.
WATCHES = [
    (GATEWAY_CONFIG_DIR, "openclaw-kit-gateway", "The gateway's desired config and its secrets (gateway.env)."),
    (GATEWAY_LIVE_CONFIG, "openclaw-kit-gateway", "The config the gateway runs with."),
    (KIT_CONFIG_DIR, "openclaw-kit-secrets", "The kit's own config and the off-host backup's secrets."),
    (SSHD_CONFIG, "openclaw-kit-sshd", "sshd's config."),
    (SSHD_DROPIN_DIR, "openclaw-kit-sshd", "sshd's drop-ins, the kit's hardening among them."),
    (NFT_CONF, "openclaw-kit-firewall", "The ruleset nftables loads at boot."),
    (NFT_DIR, "openclaw-kit-firewall", "The kit's persisted ruleset."),
    ("/etc/crontab", "openclaw-kit-cron", "The system crontab."),
    ("/etc/cron.d", "openclaw-kit-cron", "cron's drop-ins, the kit's jobs among them."),
    ("/var/spool/cron/crontabs", "openclaw-kit-cron", "Users' crontabs."),
]


class KernelCommandLine(FactBase):
    default = str

    def command(self):
        return "cat /proc/cmdline"

    def process(self, output):
        return " ".join(output).strip()


def audit_skipped(*, enabled: bool, container: str | None, cmdline: str) -> str | None:
    """Why auditd is not run on this host (one line), or None: decided on facts that cannot change during a run."""
    if not enabled:
        return "auditd: false in settings"
    if container:
        return (f"the kernel's audit system belongs to the machine running this {container} container "
                "(run auditd there)")
    if "audit=0" in cmdline.split():
        return "the kernel was booted with audit=0"
    return None


def rules() -> str:
    return render("audit", "openclaw-kit.rules.j2", watches=WATCHES)


@deploy("audit")
def audit(settings: HostSettings):
    skipped = audit_skipped(enabled=settings.auditd, container=host.get_fact(Container),
                            cmdline=host.get_fact(KernelCommandLine))
    if skipped:
        logger.warning(f"{host.name}: auditd skipped: {skipped}")
        return
    install_missing(["auditd"])
    rules_op = files.put(name=f"Audit rules for the kit's files {RULES}", src=io.StringIO(rules()), dest=RULES,
                         user="root", group="root", mode="640")
    # augenrules merges rules.d/ into audit.rules and loads it (the package's own rules stay first).
    server.shell(name="Load the audit rules", commands=["augenrules --load"], _if=rules_op.did_change)
    systemd.service(name="auditd enabled and running", service="auditd.service", running=True, enabled=True)
