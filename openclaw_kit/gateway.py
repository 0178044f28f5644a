"""The gateway's health, as the roles that (re)start it wait for it: role openclaw after a start on
macOS, role backup after a restore."""

from __future__ import annotations

from openclaw_kit.layout import GATEWAY_CURRENT, GATEWAY_SERVICE
from openclaw_kit.templates import render_command

# Seconds, for /healthz after a restore (role backup) and on macOS; Linux deploys use
# gateway_start_timeout_seconds (also 180 by default). A first start takes 20-40 s here, but 2.5 min
# was seen on a saturated 2-core machine: a small VPS under load must not fail a deploy whose gateway
# is merely slow to come up.
HEALTH_TIMEOUT = 180


def health_wait_command(port: int, *, service: str, recent_logs: str) -> str:
    """A bounded wait for GET /healthz on loopback; on failure, the gateway's last log lines (`recent_logs`,
    a command)."""
    return render_command("openclaw", "health-wait.sh.j2", current=GATEWAY_CURRENT, port=port, timeout=HEALTH_TIMEOUT,
                          service=service, recent_logs=recent_logs)


def systemd_health_wait_command(port: int) -> str:
    """health_wait_command for the gateway's systemd unit; on failure, the unit's last journal lines."""
    return health_wait_command(
        port, service=GATEWAY_SERVICE, recent_logs=f"journalctl -u {GATEWAY_SERVICE} -n 30 --no-pager"
    )
