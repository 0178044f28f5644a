"""Settings of role nginx (roles/nginx.py): what the public side serves, who operates the gateway."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from openclaw_kit.settings.rules import Strict

# OpenClaw's webhook routes (their defaults in its docs, 2026.9.6) that `public_webhooks` can open
# to the public side: hooks.path, Slack in HTTP mode, Google Chat, LINE, Feishu, Nextcloud Talk,
# Synology Chat, SMS, the webhooks plugin (/plugins/webhooks/<name>). Telegram (long polling, as
# the kit runs it), Slack in socket mode and WhatsApp need none.
WEBHOOK_PATHS = {
    "hooks": "/hooks",
    "slack": "/slack/events",
    "googlechat": "/googlechat",
    "line": "/line/webhook",
    "feishu": "/feishu/events",
    "nextcloud-talk": "/nextcloud-talk-webhook",
    "synology-chat": "/webhook/synology",
    "sms": "/webhooks/sms",
    "webhooks-plugin": "/plugins/webhooks",
}
Webhook = Literal[tuple(WEBHOOK_PATHS)]  # type: ignore[valid-type]


class NginxSettings(Strict):
    # Public side of nginx: ACME on 80 and, on 443, only these webhook routes. The Control UI, the
    # operator WebSocket and the HTTP API answer loopback (an SSH tunnel) and private_cidrs only, as
    # OpenClaw's SECURITY.md asks ("no public reverse proxy"); the opt-in below adds admin_cidrs.
    ROLE: ClassVar[str] = "nginx"

    public_webhooks: list[Webhook] = Field(
        [], description="OpenClaw webhook routes served to public addresses on 443: "
        + ", ".join(f"`{name}`" for name in WEBHOOK_PATHS)
        + "; everything else is for operators only.")
    dangerously_expose_control_ui_to_admin_cidrs: bool = Field(
        False, description="`true` serves the Control UI and operator API on public 443 to `admin_cidrs` "
        "(against OpenClaw's guidance).")
