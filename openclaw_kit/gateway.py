"""The gateway's health, as the roles that (re)start it wait for it: role openclaw after a start on
macOS, role backup after a restore."""

from __future__ import annotations

from openclaw_kit.layout import GATEWAY_CURRENT, GATEWAY_SERVICE

# Seconds, for /healthz after a restore (role backup) and on macOS; Linux deploys use
# gateway_start_timeout_seconds (also 180 by default). A first start takes 20-40 s here, but 2.5 min
# was seen on a saturated 2-core machine: a small VPS under load must not fail a deploy whose gateway
# is merely slow to come up.
HEALTH_TIMEOUT = 180


def health_wait(port: int, *, service: str, recent_logs: str) -> str:
    """A bounded wait for GET /healthz on loopback (by the release's own node: no curl needed); on
    failure, the gateway's last log lines (`recent_logs`, a command)."""
    probe = (
        f"{GATEWAY_CURRENT}/bin/node -e \"fetch('http://127.0.0.1:{port}/healthz')"
        '.then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"'
    )
    return (
        f"for i in $(seq {HEALTH_TIMEOUT}); do {probe} && exit 0; sleep 1; done; "
        f"echo '{service} did not answer /healthz within {HEALTH_TIMEOUT}s' >&2; "
        f"{recent_logs} >&2; exit 1"
    )


def systemd_health_wait(port: int) -> str:
    """health_wait for the gateway's systemd unit; on failure, the unit's last journal lines."""
    return health_wait(
        port, service=GATEWAY_SERVICE, recent_logs=f"journalctl -u {GATEWAY_SERVICE} -n 30 --no-pager"
    )
