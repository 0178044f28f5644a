"""Settings: every host's inventory data parsed into typed objects, validated before any change.

The inventory (host data merged over group data, as pyinfra does) holds the kit's settings as
top-level keys next to pyinfra's own connection keys (ssh_user, ssh_key, ...). Defaults live
here and only here. `validate_hosts` checks every host and reports every problem at once, one
line each: host, setting path, value, rule. A secret's value never appears in an error.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pyinfra.api.exceptions import PyinfraError

from roles.secrets import Secret, describe_literal, reference_name

LETSENCRYPT = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
SUPPORTED_SYSTEMS = {("Debian", 12), ("Ubuntu", 24)}
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

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$)({_LABEL}\.)+[a-z]{{2,63}}$")
_HOSTNAME = re.compile(rf"^{_LABEL}$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@" + rf"({_LABEL}\.)+[a-z]{{2,63}}$")
_VERSION_DATE = re.compile(r"^20\d\d\.\d{1,2}\.\d{1,2}(-\d+)?$")
_NODE_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_SLACK_WORKSPACE = re.compile(r"^T[A-Z0-9]{6,}$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{6,}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class SettingsError(PyinfraError):
    """All settings problems of all hosts, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        count = len(problems)
        super().__init__(
            f"{count} settings problem{'s' if count != 1 else ''}; no host was changed:\n"
            + "\n".join(f"  {line}" for line in problems)
        )


# --- value rules: each raises ValueError with the rule, never echoing secret values ---------


def _domain(value: str) -> str:
    if not isinstance(value, str) or not _DOMAIN.match(value):
        raise ValueError("must be a fully qualified domain name in lower case, like gateway.example.com")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("must be an email address like admin@example.com")
    return value


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        raise ValueError("must be a network in CIDR notation with no host bits set, like 203.0.113.0/24") from None


def _interface(value: str) -> str:
    if not _INTERFACE.match(value):
        raise ValueError("must be a network interface name (1-15 letters, digits, . _ : -)")
    return value


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    return value


def _proxy_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise ValueError("must be http://host:port or https://host:port")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials (they would be written to world-readable apt and npm config)")
    return value


def _pem_file(value: str) -> str:
    try:
        text = Path(value).read_text(encoding="ascii", errors="replace")
    except OSError as error:
        raise ValueError(f"must be a readable PEM file on the controller ({error.strerror})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("must be a PEM file holding at least one CERTIFICATE")
    return value


def _secret(value: Any, info: ValidationInfo) -> Secret:
    name = reference_name(value)
    if name is None:
        raise ValueError("must be a ${VAR} reference to an environment variable, not a literal secret")
    env: Mapping[str, str] = (info.context or {}).get("env", {})
    if not env.get(name):
        raise ValueError(f"environment variable {name} is not set (nor in .env)")
    return Secret(name, env[name])


Domain = Annotated[str, AfterValidator(_domain)]
Email = Annotated[str, AfterValidator(_email)]
Cidr = Annotated[str, AfterValidator(_cidr)]
Interface = Annotated[str, AfterValidator(_interface)]
Port = Annotated[int, Field(ge=1, le=65535)]
SecretRef = Annotated[Any, AfterValidator(_secret)]
SECRET_FIELDS = {"gateway_token", "bot_token", "app_token"}


class Strict(BaseModel):
    # Unknown keys are errors: a typo must not silently become a default.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True)


# --- channels ----------------------------------------------------------------------------------

DmPolicy = Literal["allowlist", "pairing", "open", "disabled"]
GroupPolicy = Literal["allowlist", "open", "disabled"]


class Channel(Strict):
    enabled: bool = True
    dm_policy: DmPolicy = "allowlist"
    group_policy: GroupPolicy = "allowlist"
    # Named opt-ins: an open policy lets anyone on the network talk to an agent that can read
    # the owner's mail and money, so it is never a default nor a one-word change.
    dangerously_allow_open_dms: bool = False
    dangerously_allow_open_groups: bool = False

    @model_validator(mode="after")
    def _policies(self):
        if not self.enabled:
            return self
        if self.dm_policy in ("allowlist", "pairing") and not self.allow_from:
            raise _FieldError("allow_from", self.allow_from, "an enabled channel needs an allowlist: name who may message the gateway (or set dm_policy: disabled)")
        if self.dm_policy == "open" and not self.dangerously_allow_open_dms:
            raise _FieldError("dm_policy", "open", "dm_policy open lets anyone message the agent; it needs the explicit opt-in dangerously_allow_open_dms: true")
        if self.group_policy == "open" and not self.dangerously_allow_open_groups:
            raise _FieldError("group_policy", "open", "group_policy open lets any group use the agent; it needs the explicit opt-in dangerously_allow_open_groups: true")
        return self


class Telegram(Channel):
    bot_token: SecretRef
    allow_from: list[Annotated[int, Field(gt=0)]] = []
    # Group and supergroup chat ids are negative numbers.
    group_allow_from: list[Annotated[int, Field(lt=0)]] = []


class Slack(Channel):
    bot_token: SecretRef
    app_token: SecretRef
    workspace_ids: list[str] = []
    allow_from: list[str] = []
    group_allow_from: list[str] = []

    @field_validator("workspace_ids")
    @classmethod
    def _workspaces(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _SLACK_WORKSPACE.match(item):
                raise ValueError(f"{item!r} is not a Slack workspace id (T followed by letters and digits)")
        return value

    @field_validator("allow_from")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _SLACK_USER.match(item):
                raise ValueError(f"{item!r} is not a Slack user id (U or W followed by letters and digits)")
        return value

    @model_validator(mode="after")
    def _workspace_required(self):
        if self.enabled and not self.workspace_ids:
            raise _FieldError("workspace_ids", [], "an enabled Slack channel needs the workspace ids it serves")
        return self


class WhatsApp(Channel):
    allow_from: list[str] = []
    group_allow_from: list[str] = []

    @field_validator("allow_from")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _E164.match(item):
                raise ValueError(f"{item!r} is not a phone number in E.164 form, like +15551234567")
        return value


class Channels(Strict):
    telegram: Telegram | None = None
    slack: Slack | None = None
    whatsapp: WhatsApp | None = None


# --- offsite_backup (role backup) -----------------------------------------------------------------
# The daily archive copied off the host with restic: to another host over SFTP (restic's
# sftp:user@host:/path) or to an S3-compatible store (s3:https://host/bucket[/prefix]).
_SFTP_REPOSITORY = re.compile(r"^sftp:(?P<user>[a-z_][a-z0-9_.-]{0,31})@(?P<host>[A-Za-z0-9.-]{1,253}):(?P<path>/[A-Za-z0-9._/-]*)$")
_S3_REPOSITORY = re.compile(r"^s3:https://(?P<host>[A-Za-z0-9.-]{1,253})(:\d{1,5})?/[A-Za-z0-9._/-]+$")
_HOST_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+={0,3}$")
SECRET_FIELDS.update({"password", "s3_access_key_id", "s3_secret_access_key"})


def _repository(value: str) -> str:
    if value.startswith("s3:") and "@" in urlsplit(value[3:]).netloc:
        raise ValueError("must not carry credentials; give them as s3_access_key_id and s3_secret_access_key secrets")
    if not (_SFTP_REPOSITORY.match(value) or _S3_REPOSITORY.match(value)):
        raise ValueError("must be a restic repository sftp:user@host:/absolute/path or s3:https://host/bucket[/prefix] "
                         "(no credentials, spaces or quotes in it)")
    return value


class OffsiteBackup(Strict):
    repository: Annotated[str, AfterValidator(_repository)]
    password: SecretRef
    # SFTP: the target's SSH host key ("ssh-ed25519 AAAA..."), checked strictly; its port.
    sftp_host_key: Annotated[str, AfterValidator(lambda v: _check(_HOST_KEY, v, "must be an SSH public host key like 'ssh-ed25519 AAAA...' (type and key, no host name)"))] | None = None
    sftp_port: Port = 22
    # S3: the access key pair.
    s3_access_key_id: SecretRef | None = None
    s3_secret_access_key: SecretRef | None = None
    # Snapshots of the daily archive kept (restic forget); the audit log's are kept audit_retention_days.
    keep_daily: Annotated[int, Field(ge=1, le=3650)] = 7
    keep_weekly: Annotated[int, Field(ge=0, le=520)] = 4
    keep_monthly: Annotated[int, Field(ge=0, le=1200)] = 12

    @property
    def sftp(self) -> dict | None:
        """user, host, path of an SFTP repository; None for S3."""
        match = _SFTP_REPOSITORY.match(self.repository)
        return match.groupdict() if match else None

    @field_validator("password", mode="after")
    @classmethod
    def _strong_password(cls, value: Secret) -> Secret:
        if len(value.reveal()) < 16:
            raise ValueError(f"${{{value.name}}} is {len(value.reveal())} characters long: the key to every off-host backup must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _target(self):
        s3_keys = (self.s3_access_key_id, self.s3_secret_access_key)
        if self.sftp:
            if self.sftp_host_key is None:
                raise _FieldError("sftp_host_key", None, "an SFTP repository needs the target's SSH host key (ssh-keyscan it, check it, paste 'type key')")
            if any(s3_keys):
                raise _FieldError("repository", self.repository, "is an SFTP repository: s3_access_key_id and s3_secret_access_key do not apply")
        else:
            if not all(s3_keys):
                raise _FieldError("s3_access_key_id" if self.s3_access_key_id is None else "s3_secret_access_key", None,
                                  "an S3 repository needs s3_access_key_id and s3_secret_access_key")
            if self.sftp_host_key is not None:
                raise _FieldError("sftp_host_key", self.sftp_host_key, "applies to an SFTP repository only")
        return self

    def secrets(self) -> dict[str, Secret]:
        """The S3 credentials by environment variable name, as restic reads them."""
        if self.s3_access_key_id is None or self.s3_secret_access_key is None:
            return {}
        return {"AWS_ACCESS_KEY_ID": self.s3_access_key_id, "AWS_SECRET_ACCESS_KEY": self.s3_secret_access_key}

# --- end of offsite_backup -------------------------------------------------------------------------


# --- the host -------------------------------------------------------------------------------------


# Base host: sshd's AllowUsers/AllowGroups take plain account names here (no patterns, no user@host).
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
Account = Annotated[str, AfterValidator(lambda v: _check(_ACCOUNT, v, "must be a plain user or group name (lower-case letters, digits, . _ -; no patterns)"))]


class HostSettings(Strict):
    # Identity and TLS
    domain: Domain
    extra_domains: list[Domain] = []
    admin_email: Email
    acme_directory: str = Field(default="letsencrypt", validate_default=True)
    # A CA bundle on the controller to trust for a private ACME server (the sandbox's pebble).
    acme_ca_file: Annotated[str, AfterValidator(_pem_file)] | None = None
    hostname: Annotated[str, AfterValidator(lambda v: _check(_HOSTNAME, v, "must be a single DNS label"))] | None = None

    # Network
    admin_cidrs: Annotated[list[Cidr], Field(min_length=1)]
    # More networks that may reach SSH (a bastion range, or 0.0.0.0/0); unlike admin_cidrs,
    # fail2ban bans their addresses after failed logins.
    ssh_cidrs: list[Cidr] = []
    sshd_port: Port = 22
    public_interface: Interface | None = None
    private_interface: Interface | None = None
    private_cidrs: list[Cidr] = []
    private_allowed_ports: list[Port] = []
    proxy: Annotated[str, AfterValidator(_proxy_url)] | None = None
    # Public side of nginx: ACME on 80 and, on 443, only these webhook routes. The Control UI, the
    # operator WebSocket and the HTTP API answer loopback (an SSH tunnel) and private_cidrs only, as
    # OpenClaw's SECURITY.md asks ("no public reverse proxy"); the opt-in below adds admin_cidrs.
    public_webhooks: list[Webhook] = []
    dangerously_expose_control_ui_to_admin_cidrs: bool = False
    # A PEM bundle on the controller: the CA of a TLS-inspecting proxy, added to the hosts' trust store.
    proxy_ca_file: Annotated[str, AfterValidator(_pem_file)] | None = None

    # Firewall
    # open: any outgoing connection; restricted: only DNS, NTP, DHCP, HTTP(S), the proxy's port and egress_allowed_ports.
    egress: Literal["open", "restricted"] = "open"
    egress_allowed_ports: list[Port] = []

    # fail2ban: an address with fail2ban_maxretry failures within fail2ban_findtime_seconds is
    # dropped for fail2ban_bantime_seconds (at least 10 s, so a ban is felt; at most a year, so a
    # mistaken one ends).
    fail2ban_bantime_seconds: Annotated[int, Field(ge=10, le=31_536_000)] = 3600
    fail2ban_findtime_seconds: Annotated[int, Field(ge=10, le=86_400)] = 600
    fail2ban_maxretry: Annotated[int, Field(ge=1, le=100)] = 5

    # OpenClaw
    openclaw_version: Annotated[str, AfterValidator(lambda v: _check(_VERSION_DATE, v, "must be an OpenClaw release version like 2026.9.6"))] = "2026.9.6"
    node_version: Annotated[str, AfterValidator(lambda v: _check(_NODE_VERSION, v, "must be a full Node.js version like 24.21.0"))] = "24.21.0"
    # nodejs-dist: the official release tarball, downloaded by the host; npm-package: the same
    # build from the npm registry, fetched by the controller's npm and uploaded (no npm on the host yet).
    node_source: Literal["nodejs-dist", "npm-package"] = "nodejs-dist"
    node_dist_url: Annotated[str, AfterValidator(_https_url)] = "https://nodejs.org/dist"
    node_sha256: Annotated[str, AfterValidator(lambda v: _check(_SHA256, v, "must be 64 lower-case hex digits"))] | None = None
    gateway_port: Annotated[int, Field(ge=1024, le=65535)] = 18789
    gateway_token: SecretRef = Field(default="${OPENCLAW_GATEWAY_TOKEN}", validate_default=True)
    channels: Channels = Channels()

    # Logs
    log_retention_days: Annotated[int, Field(ge=1, le=3650)] = 14
    audit_retention_days: Annotated[int, Field(ge=1, le=36500)] = 2555
    # Verified archives of the gateway's state (openclaw backup create), one a day.
    backup_retention_days: Annotated[int, Field(ge=1, le=3650)] = 7
    # Off-host copies of the daily archive and the audit log (role backup); none by default.
    offsite_backup: OffsiteBackup | None = None

    # Base host
    # prohibit-password: root logs in with a key only; no: not at all (needs a non-root ssh_user).
    sshd_permit_root_login: Literal["prohibit-password", "no"] = "prohibit-password"
    # When set, only these users (and/or members of these groups) may log in over SSH.
    sshd_allow_users: list[Account] = []
    sshd_allow_groups: list[Account] = []
    # no: no forwarding of any kind; local: `ssh -L` only (e.g. to reach the gateway on loopback).
    sshd_tcp_forwarding: Literal["no", "local"] = "no"
    # Keep accepting IPv6 router advertisements (SLAAC), for providers that assign IPv6 that way.
    ipv6_accept_ra: bool = False
    # Let unattended security upgrades reboot the host when one needs it, at unattended_reboot_time.
    unattended_reboot: bool = False
    unattended_reboot_time: Annotated[str, AfterValidator(lambda v: _check(_CLOCK, v, "must be a time of day HH:MM, like 04:00"))] = "04:00"

    @model_validator(mode="after")
    def _sshd_keeps_the_deploy_in(self, info: ValidationInfo):
        # ssh_user is pyinfra's connection key (not a kit setting): validate_hosts passes it in the context.
        ssh_user = (info.context or {}).get("ssh_user")
        if self.sshd_allow_users and ssh_user not in self.sshd_allow_users:
            rule = (f"must include the deploy's ssh_user {ssh_user!r}, or sshd would lock the deploy out" if ssh_user
                    else "needs ssh_user set in the inventory and listed here, or sshd could lock the deploy out")
            raise _FieldError("sshd_allow_users", self.sshd_allow_users, rule)
        if self.sshd_permit_root_login == "no" and ssh_user in (None, "root"):
            raise _FieldError("sshd_permit_root_login", "no", f"needs a non-root ssh_user (with sudo); the deploy logs in as {ssh_user or 'an unnamed user'} and would lock itself out")
        return self

    @field_validator("acme_directory")
    @classmethod
    def _acme(cls, value: str) -> str:
        if value in LETSENCRYPT:
            return LETSENCRYPT[value]
        try:
            return _https_url(value)
        except ValueError:
            raise ValueError("must be letsencrypt, letsencrypt-staging or the https:// URL of an RFC 8555 directory") from None

    @field_validator("gateway_token", mode="after")
    @classmethod
    def _strong_token(cls, value: Secret) -> Secret:
        if len(value.reveal()) < 32:
            raise ValueError(f"${{{value.name}}} is {len(value.reveal())} characters long: a gateway token grants full operator access and must be at least 32 characters (make one with `python -m roles.secrets token`)")
        return value

    @model_validator(mode="after")
    def _ports(self):
        taken = {self.sshd_port: "sshd_port", 80: "HTTP (nginx)", 443: "HTTPS (nginx)"}
        if self.gateway_port in taken:
            raise _FieldError("gateway_port", self.gateway_port, f"clashes with {taken[self.gateway_port]} on port {self.gateway_port}; every service needs its own port")
        if self.sshd_port in (80, 443):
            raise _FieldError("sshd_port", self.sshd_port, "clashes with nginx on the same port; every service needs its own port")
        if self.private_interface and not self.private_cidrs:
            raise _FieldError("private_cidrs", [], "a private_interface needs the private_cidrs that live behind it")
        return self

    @model_validator(mode="after")
    def _firewall(self):
        if self.public_interface and self.public_interface == self.private_interface:
            raise _FieldError("private_interface", self.private_interface, "is also the public_interface; the private network needs its own interface")
        if self.private_allowed_ports and not self.private_cidrs:
            raise _FieldError("private_allowed_ports", self.private_allowed_ports, "needs private_cidrs naming who may reach these ports")
        if self.gateway_port in self.private_allowed_ports:
            raise _FieldError("private_allowed_ports", self.private_allowed_ports, f"includes gateway_port {self.gateway_port}; the gateway is reachable on loopback only (nginx fronts it)")
        if self.egress_allowed_ports and self.egress != "restricted":
            raise _FieldError("egress_allowed_ports", self.egress_allowed_ports, "only applies with egress: restricted (egress is open: every port is allowed already)")
        return self

    @property
    def origin(self) -> str:
        return f"https://{self.domain}"

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


def _check(pattern: re.Pattern, value: str, rule: str) -> str:
    if not pattern.match(value):
        raise ValueError(rule)
    return value


class _FieldError(ValueError):
    """A model-level rule that belongs to one field, so the error can name that field."""

    def __init__(self, field: str, value: Any, rule: str):
        super().__init__(rule)
        self.field, self.value, self.rule = field, value, rule


# --- validation of a whole inventory --------------------------------------------------------------


@lru_cache(maxsize=1)
def connection_keys() -> frozenset[str]:
    """pyinfra's own per-host keys (ssh_user, docker_identifier, ...), which are not kit settings."""
    from typing import get_type_hints

    from pyinfra.api.connectors import get_all_connectors

    keys: set[str] = set()
    for connector in get_all_connectors().values():
        keys.update(get_type_hints(connector.data_cls))
    return frozenset(keys)


def kit_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """The kit's part of a host's data: pyinfra's connection keys and `_global` arguments removed."""
    return {key: value for key, value in data.items() if key not in connection_keys() and not key.startswith("_")}


@dataclass(frozen=True)
class System:
    kernel: str
    distribution: str | None
    major: int | None


def system_problem(system: System) -> str | None:
    if system.kernel == "Darwin":
        return "macOS hosts are not supported by this version of the kit (Linux roles only)"
    if (system.distribution, system.major) not in SUPPORTED_SYSTEMS:
        found = f"{system.distribution or 'unknown'} {system.major or ''}".strip()
        return f"{system.kernel} {found} is not supported: the kit supports Debian 12 and Ubuntu 24.04"
    return None


def _show(value: Any, loc: tuple) -> str:
    if any(part in SECRET_FIELDS for part in loc if isinstance(part, str)):
        return describe_literal(value) if reference_name(value) is None else str(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _loc_path(loc: tuple) -> str:
    return ".".join(str(part) if isinstance(part, str) else f"[{part}]" for part in loc).replace(".[", "[")


def _problems(host_name: str, error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        # pydantic adds union/choice names (e.g. "str", "function-after[...]") to the location.
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and ("[" in p or p in ("str", "int", "list", "dict", "bool"))))
        ctx_error = (item.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _FieldError):
            loc = loc + (ctx_error.field,)
            value, rule = ctx_error.value, ctx_error.rule
        elif item["type"] == "extra_forbidden":
            value = item["input"]
            siblings = _known_fields(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), siblings, n=1)
            rule = "unknown setting" + (f"; did you mean {close[0]}?" if close else f"; known here: {', '.join(sorted(siblings))}")
        elif item["type"] == "missing":
            value, rule = None, "is required"
        else:
            value = item.get("input")
            rule = item["msg"].removeprefix("Value error, ")
        lines.append(f"host {host_name}: {_loc_path(loc)} = {_show(value, loc) if item['type'] != 'missing' else '(missing)'}: {rule}")
    return lines


def _known_fields(loc: tuple) -> list[str]:
    model: Any = HostSettings
    for part in loc:
        if not isinstance(part, str):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            return []
        model = candidates[0]
    return list(model.model_fields)


def validate_hosts(
    hosts: Mapping[str, Mapping[str, Any]],
    env: Mapping[str, str],
    systems: Mapping[str, System | None] | None = None,
) -> dict[str, HostSettings]:
    """Settings for every host, or one SettingsError listing every problem of every host."""
    settings: dict[str, HostSettings] = {}
    problems: list[str] = []
    for name, data in hosts.items():
        own = kit_settings(data)
        system = (systems or {}).get(name)
        if system is not None and (problem := system_problem(system)):
            problems.append(f"host {name}: operating system = {system.distribution or system.kernel!r}: {problem}")
        try:
            settings[name] = HostSettings.model_validate(own, context={"env": env, "ssh_user": data.get("ssh_user")})
        except ValidationError as error:
            problems.extend(_problems(name, error))
    if problems:
        raise SettingsError(problems)
    return settings


# --- from a pyinfra run ----------------------------------------------------------------------------

_validated: dict[int, dict[str, HostSettings]] = {}


def settings_for(host, inventory) -> HostSettings:
    """
    This host's settings; on the first call of a run, every host of the inventory is validated.

    pyinfra prepares all hosts (running deploy.py once per host) before it executes anything,
    and a SettingsError raised here aborts that preparation, so a bad host anywhere means zero
    changes everywhere. Only facts that cannot change during a run (kernel, distribution) are read.
    """
    import gevent.lock

    from pyinfra.facts.server import Kernel, LinuxDistribution

    from roles.secrets import controller_env

    key = id(inventory)
    lock = _locks.setdefault(key, gevent.lock.Semaphore())
    with lock:  # the hosts' deploy files run concurrently as greenlets: validate once
        if key not in _validated:
            hosts = list(inventory.iter_activated_hosts())
            systems = {}
            for each in hosts:
                kernel = each.get_fact(Kernel)
                distro = each.get_fact(LinuxDistribution) if kernel == "Linux" else {}
                systems[each.name] = System(kernel, distro.get("name"), distro.get("major"))
            _validated[key] = validate_hosts({each.name: each.data.dict() for each in hosts}, controller_env(), systems)
    return _validated[key][host.name]


_locks: dict[int, Any] = {}
