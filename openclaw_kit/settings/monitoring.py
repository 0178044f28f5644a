"""Settings of role monitoring (roles/monitoring.py): Prometheus, Alertmanager and exporters on the host.

Off by default. When enabled, the host is its own monitoring server: everything listens on loopback
only, and alerts go to the receivers named here (a webhook, an email address, or both).
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from openclaw_kit.settings.rules import Email, FieldError, SecretRef, Strict, check

SECRET_FIELDS = {"bearer_token", "password"}

# Prometheus' durations, one unit each (what the kit's defaults use): 30s, 5m, 2h, 1d.
_DURATION = re.compile(r"^[1-9][0-9]{0,5}(s|m|h|d)$")
_SMARTHOST = re.compile(r"^[A-Za-z0-9.-]{1,253}:[0-9]{1,5}$")
Duration = Annotated[
    str, AfterValidator(lambda v: check(_DURATION, v, "must be a duration like 30s, 5m, 2h or 1d (one unit)"))
]
Smarthost = Annotated[
    str,
    AfterValidator(lambda v: check(_SMARTHOST, v, "must be the SMTP server as host:port, like smtp.example.com:587")),
]


def _webhook_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; give a bearer_token ${VAR} instead")
    return value


class WebhookReceiver(Strict):
    url: Annotated[str, AfterValidator(_webhook_url)] = Field(
        description="Where Alertmanager POSTs its JSON (firing and resolved alerts): an http:// or https:// URL "
        "without credentials.")
    bearer_token: SecretRef | None = Field(
        None, description="Secret reference (`${VAR}`) sent as `Authorization: Bearer ...`, stored on the host in "
        "a 0600 file; needs an https:// `url`.")

    @model_validator(mode="after")
    def _bearer_over_tls(self):
        if self.bearer_token is not None and not self.url.startswith("https://"):
            raise FieldError("url", self.url,
                             "a bearer_token needs an https:// URL (over http it travels in the clear)")
        return self


class EmailReceiver(Strict):
    smarthost: Smarthost = Field(
        description="The SMTP server Alertmanager hands its mail to, as host:port (STARTTLS is required).")
    from_address: Email = Field(description="The sender of every alert mail.")
    to: Email = Field(description="The recipient of every alert mail.")
    user: str | None = Field(None, description="SMTP login's user; needs `password` (both or neither).")
    password: SecretRef | None = Field(
        None, description="Secret reference (`${VAR}`) to the SMTP login's password, stored on the host in a 0600 "
        "file; needs `user`.")

    @model_validator(mode="after")
    def _login_pair(self):
        if (self.user is None) != (self.password is None):
            missing = "password" if self.password is None else "user"
            raise FieldError(missing, None, "an SMTP login needs both user and password")
        return self


class AlertThresholds(Strict):
    # The *_for durations are each alert's Prometheus `for:`.
    gateway_down_for: Duration = Field(
        "2m", description="How long the gateway's /healthz must fail before OpenclawGatewayDown fires.")
    gateway_not_ready_for: Duration = Field(
        "10m", description="How long the gateway's /readyz must fail before "
        "OpenclawGatewayNotReady fires.")
    target_down_for: Duration = Field(
        "5m", description="How long a scrape target (an exporter, a probe) must be unreachable before "
        "ScrapeTargetDown fires.")
    certificate_probe_failed_for: Duration = Field(
        "30m", description="How long the TLS probe of port 443 must fail before CertificateProbeFailed fires.")
    disk_for: Duration = Field(
        "15m", description="How long a filesystem must be over `disk_used_percent` (or under "
        "`inodes_free_percent`) before DiskAlmostFull (or InodesLow) fires.")
    certificate_expiry_days: Annotated[int, Field(ge=1, le=90)] = Field(
        14, description="Alert when the public certificate expires in fewer days than this, 1-90.")
    daily_job_max_age_hours: Annotated[int, Field(ge=25, le=24 * 14)] = Field(
        26, description="Alert when a daily job (security audit, backup) has not succeeded for this many hours, "
        "25-336.")
    hourly_job_max_age_hours: Annotated[int, Field(ge=2, le=48)] = Field(
        3, description="Alert when the hourly job (log rotation) has not succeeded for this many hours, 2-48.")
    disk_used_percent: Annotated[int, Field(ge=50, le=99)] = Field(
        85, description="Alert when a filesystem is fuller than this, percent of its blocks, 50-99.")
    inodes_free_percent: Annotated[int, Field(ge=1, le=50)] = Field(
        10, description="Alert when fewer than this share of a filesystem's inodes are free, percent, 1-50.")


class Monitoring(Strict):
    enabled: bool = Field(
        False, description="Run Prometheus, Alertmanager and the node and blackbox exporters on the host, all on "
        "loopback; needs a receiver (`webhook` or `email`).")
    retention_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        15, description="Days of metrics Prometheus keeps, 1-3650.")
    scrape_interval: Duration = Field(
        "30s", description="How often Prometheus scrapes and evaluates its rules (a duration like 30s, 5m, 2h, 1d).")
    group_wait: Duration = Field(
        "30s", description="Alertmanager: how long it waits before the first notification of a new group.")
    group_interval: Duration = Field(
        "5m", description="Alertmanager: how long it waits between notifications of a group's changes.")
    repeat_interval: Duration = Field(
        "4h", description="Alertmanager: how long it waits before repeating an unchanged notification.")
    alerts: AlertThresholds = Field(
        AlertThresholds(), description="When each alert fires: how long a condition must hold, and its thresholds.")
    webhook: WebhookReceiver | None = Field(None, description="A receiver: alerts POSTed to a URL as JSON; none by "
                                            "default.")
    email: EmailReceiver | None = Field(None, description="A receiver: alerts mailed through an SMTP server; none "
                                        "by default.")

    @model_validator(mode="after")
    def _a_receiver(self):
        if self.enabled and self.webhook is None and self.email is None:
            raise FieldError("webhook", None, "enabled monitoring needs a receiver (webhook or email): "
                                              "alerts would go nowhere")
        return self


class MonitoringSettings(Strict):
    ROLE: ClassVar[str] = "monitoring"

    monitoring: Monitoring = Field(
        Monitoring(), description="Prometheus and its alerts on the host itself, everything on loopback "
        "([monitoring.md](monitoring.md)); off by default.")
