"""Value rules for settings: each raises ValueError with the rule, never echoing a secret's value."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from openclaw_kit.secrets import Secret, reference_name

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

_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def domain(value: str) -> str:
    if not isinstance(value, str) or not _DOMAIN.match(value):
        raise ValueError("must be a fully qualified domain name in lower case, like gateway.example.com")
    return value


def email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("must be an email address like admin@example.com")
    return value


def cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        raise ValueError("must be a network in CIDR notation with no host bits set, like 203.0.113.0/24") from None


def interface(value: str) -> str:
    if not _INTERFACE.match(value):
        raise ValueError("must be a network interface name (1-15 letters, digits, . _ : -)")
    return value


def https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    return value


def proxy_url(value: str) -> str:
    parts = urlsplit(value)
    # First: the value is shown masked in the error, but the rule about credentials matters most.
    if parts.username or parts.password:
        raise ValueError("must not carry credentials (they would be written to world-readable apt and npm config)")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise ValueError("must be http://host:port or https://host:port")
    return value


def pem_file(value: str) -> str:
    try:
        text = Path(value).read_text(encoding="ascii", errors="replace")
    except OSError as error:
        raise ValueError(f"must be a readable PEM file on the controller ({error.strerror})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("must be a PEM file holding at least one CERTIFICATE")
    return value


def secret(value: Any, info: ValidationInfo) -> Secret:
    name = reference_name(value)
    if name is None:
        raise ValueError("must be a ${VAR} reference to an environment variable, not a literal secret")
    env: Mapping[str, str] = (info.context or {}).get("env", {})
    if not env.get(name):
        raise ValueError(f"environment variable {name} is not set (nor in .env)")
    return Secret(name, env[name])


def check(pattern: re.Pattern, value: str, rule: str) -> str:
    if not pattern.match(value):
        raise ValueError(rule)
    return value


class FieldError(ValueError):
    """A model-level rule that belongs to one field, so the error can name that field."""

    def __init__(self, field: str, value: Any, rule: str):
        super().__init__(rule)
        self.field, self.value, self.rule = field, value, rule



Domain = Annotated[str, AfterValidator(domain)]
Email = Annotated[str, AfterValidator(email)]
Cidr = Annotated[str, AfterValidator(cidr)]
Interface = Annotated[str, AfterValidator(interface)]
Port = Annotated[int, Field(ge=1, le=65535)]
SecretRef = Annotated[Any, AfterValidator(secret)]
# sshd's AllowUsers/AllowGroups take plain account names here (no patterns, no user@host).
Account = Annotated[
    str,
    AfterValidator(
        lambda v: check(
            _ACCOUNT, v, "must be a plain user or group name (lower-case letters, digits, . _ -; no patterns)"
        )
    ),
]
Hostname = Annotated[str, AfterValidator(lambda v: check(_HOSTNAME, v, "must be a single DNS label"))]
ClockTime = Annotated[str, AfterValidator(lambda v: check(_CLOCK, v, "must be a time of day HH:MM, like 04:00"))]
Sha256 = Annotated[str, AfterValidator(lambda v: check(_SHA256, v, "must be 64 lower-case hex digits"))]
ReleaseDate = Annotated[
    str, AfterValidator(lambda v: check(_VERSION_DATE, v, "must be an OpenClaw release version like 2026.9.6"))
]
NodeVersion = Annotated[
    str, AfterValidator(lambda v: check(_NODE_VERSION, v, "must be a full Node.js version like 24.21.0"))
]
HttpsUrl = Annotated[str, AfterValidator(https_url)]
ProxyUrl = Annotated[str, AfterValidator(proxy_url)]
PemFile = Annotated[str, AfterValidator(pem_file)]


class Strict(BaseModel):
    # Unknown keys are errors: a typo must not silently become a default.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True)
