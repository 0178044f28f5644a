"""Settings of role openclaw (roles/openclaw/): the pinned versions, the gateway, its channels."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from openclaw_kit.pins import NODE_VERSION, OPENCLAW_VERSION
from openclaw_kit.secrets import Secret
from openclaw_kit.settings.rules import FieldError, HttpsUrl, NodeVersion, ReleaseDate, SecretRef, Sha256, Strict

_SLACK_WORKSPACE = re.compile(r"^T[A-Z0-9]{6,}$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{6,}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SECRET_FIELDS = {"gateway_token", "bot_token", "app_token"}

def matching(pattern: re.Pattern, what: str):
    """A list of strings that each match `pattern`; the error names the first that does not."""

    def each(value: list[str]) -> list[str]:
        for item in value:
            if not pattern.match(item):
                raise ValueError(f"{item!r} is not {what}")
        return value

    return Annotated[list[str], AfterValidator(each)]


DmPolicy = Literal["allowlist", "pairing", "open", "disabled"]
GroupPolicy = Literal["allowlist", "open", "disabled"]


class Channel(Strict):
    enabled: bool = Field(True, description="`false`: the channel is configured but off (and needs no allowlist).")
    dm_policy: DmPolicy = Field(
        "allowlist", description="Who may message the agent directly: `allowlist` or `pairing` (both need "
        "`allow_from`), `open` (needs `dangerously_allow_open_dms: true`) or `disabled`.")
    group_policy: GroupPolicy = Field(
        "allowlist", description="Which groups may use the agent: `allowlist` (`group_allow_from`), `open` (needs "
        "`dangerously_allow_open_groups: true`) or `disabled`.")
    # Named opt-ins: an open policy lets anyone on the network talk to an agent that can read
    # the owner's mail and money, so it is never a default nor a one-word change.
    dangerously_allow_open_dms: bool = Field(False, description="The explicit opt-in `dm_policy: open` needs.")
    dangerously_allow_open_groups: bool = Field(False, description="The explicit opt-in `group_policy: open` needs.")

    @model_validator(mode="after")
    def _policies(self):
        if not self.enabled:
            return self
        if self.dm_policy in ("allowlist", "pairing") and not self.allow_from:
            raise FieldError(
                "allow_from",
                self.allow_from,
                "an enabled channel needs an allowlist: name who may message the gateway (or set dm_policy: disabled)",
            )
        if self.dm_policy == "open" and not self.dangerously_allow_open_dms:
            raise FieldError(
                "dm_policy",
                "open",
                "dm_policy open lets anyone message the agent; "
                "it needs the explicit opt-in dangerously_allow_open_dms: true",
            )
        if self.group_policy == "open" and not self.dangerously_allow_open_groups:
            raise FieldError(
                "group_policy",
                "open",
                "group_policy open lets any group use the agent; "
                "it needs the explicit opt-in dangerously_allow_open_groups: true",
            )
        return self


class Telegram(Channel):
    bot_token: SecretRef = Field(description="Secret reference (`${VAR}`) to the bot's token from BotFather.")
    allow_from: list[Annotated[int, Field(gt=0)]] = Field(
        [], description="Telegram user ids that may message the agent.")
    group_allow_from: list[Annotated[int, Field(lt=0)]] = Field(
        [], description="Group and supergroup chat ids (negative numbers) the agent answers in.")


class Slack(Channel):
    bot_token: SecretRef = Field(description="Secret reference (`${VAR}`) to the Slack bot token.")
    app_token: SecretRef = Field(description="Secret reference (`${VAR}`) to the Slack app token (socket mode).")
    workspace_ids: matching(_SLACK_WORKSPACE, "a Slack workspace id (T followed by letters and digits)") = Field(
        [], description="The workspace ids (`T...`) the channel serves; an enabled channel needs one.")
    allow_from: matching(_SLACK_USER, "a Slack user id (U or W followed by letters and digits)") = Field(
        [], description="Slack user ids (`U...`, `W...`) that may message the agent.")
    group_allow_from: list[str] = Field(
        [], description="The group allowlist (OpenClaw's groupAllowFrom).")

    @model_validator(mode="after")
    def _workspace_required(self):
        if self.enabled and not self.workspace_ids:
            raise FieldError("workspace_ids", [], "an enabled Slack channel needs the workspace ids it serves")
        return self


class WhatsApp(Channel):
    allow_from: matching(_E164, "a phone number in E.164 form, like +15551234567") = Field(
        [], description="Phone numbers in E.164 form (`+15551234567`) that may message the agent.")
    group_allow_from: list[str] = Field(
        [], description="The group allowlist (OpenClaw's groupAllowFrom).")


class Channels(Strict):
    telegram: Telegram | None = Field(None, description="The Telegram bot (long polling); none: off.")
    slack: Slack | None = Field(
        None, description="Slack; refused for now: it needs the @openclaw/slack plugin, which the kit does not "
        "install yet.")
    whatsapp: WhatsApp | None = Field(
        None, description="WhatsApp; refused for now: it needs the @openclaw/whatsapp plugin, which the kit does "
        "not install yet.")


class OpenclawSettings(Strict):
    ROLE: ClassVar[str] = "openclaw"

    openclaw_version: ReleaseDate = Field(OPENCLAW_VERSION, description="The OpenClaw release installed.")
    node_version: NodeVersion = Field(NODE_VERSION, description="The full Node.js version OpenClaw runs on.")
    node_source: Literal["nodejs-dist", "npm-package"] = Field(
        "nodejs-dist", description="`nodejs-dist`: the official release tarball, downloaded by the host; "
        "`npm-package`: the same build from the npm registry, fetched by the controller's `npm pack` and uploaded "
        "(Linux only: on macOS the npm node-darwin-* packages are stale).")
    node_dist_url: HttpsUrl = Field(
        "https://nodejs.org/dist", description="An https mirror of the official Node.js release tarballs.")
    node_sha256: Sha256 | None = Field(
        None, description="64 hex digits: the tarball's sha256, required for a Node.js build the kit has no "
        "pinned checksum for (it pins 24.21.0, and the `npm-package` x64 build of 24.22.3).")
    gateway_port: Annotated[int, Field(ge=1024, le=65535)] = Field(
        18789, description="The gateway's port on loopback, 1024-65535, not the SSH, HTTP or HTTPS port.")
    # A slow host's first start after an upgrade (OpenClaw migrates its state then) can take minutes.
    gateway_start_timeout_seconds: Annotated[int, Field(ge=30, le=3600)] = Field(
        180, description="How long a deploy waits, 30-3600 s, for a (re)started gateway to answer `/healthz` and "
        "`/readyz` before it fails (after a switch to a new release: rolls back).")
    gateway_token: SecretRef = Field(
        default="${OPENCLAW_GATEWAY_TOKEN}", validate_default=True,
        description="Secret reference (`${VAR}`) to the gateway's operator token, 32 characters or more "
        "(`./kit token` makes one).")
    channels: Channels = Field(Channels(), description="The chat channels the gateway serves; none by default.")

    @field_validator("gateway_token", mode="after")
    @classmethod
    def _strong_token(cls, value: Secret) -> Secret:
        if len(value.reveal()) < 32:
            raise ValueError(
                f"${{{value.name}}} is {len(value.reveal())} characters long: a gateway token grants full "
                "operator access and must be at least 32 characters (make one with `./kit token`)"
            )
        return value

    def secrets(self) -> dict[str, Secret]:
        """Every resolved secret, by environment variable name, for the service's env file."""
        found = {self.gateway_token.name: self.gateway_token}
        for channel in (self.channels.telegram, self.channels.slack):
            if channel is not None and channel.enabled:
                for field in ("bot_token", "app_token"):
                    value = getattr(channel, field, None)
                    if isinstance(value, Secret):
                        found[value.name] = value
        return found
