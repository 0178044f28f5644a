"""Settings of roles tls and nginx (roles/tls.py, roles/nginx.py): the names served and their certificate."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from openclaw_kit.settings.rules import Domain, Email, PemFile, Strict, https_url

LETSENCRYPT = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}


class TlsSettings(Strict):
    ROLE: ClassVar[str] = "tls"

    # Read by role openclaw too (the Control UI's allowed origin), which every platform runs.
    domain: Domain = Field(
        description="The lower-case FQDN the gateway is served on (its certificate, nginx's server name, the "
        "Control UI's origin).", json_schema_extra={"roles": ["tls", "nginx", "openclaw"]})
    extra_domains: list[Domain] = Field(
        [], description="More FQDNs for the certificate and nginx.", json_schema_extra={"roles": ["tls", "nginx"]})
    admin_email: Email = Field(
        description="Email address of the ACME account. Required on every host, also where role tls does not "
        "run (macOS), where nothing reads it.")
    acme_directory: str = Field(
        default="letsencrypt", validate_default=True,
        description="`letsencrypt`, `letsencrypt-staging` or the https URL of any RFC 8555 directory.")
    acme_ca_file: PemFile | None = Field(
        None, description="A CA bundle on the controller to trust for a private ACME server (the sandbox's "
        "pebble).")

    @property
    def origin(self) -> str:
        return f"https://{self.domain}"

    @field_validator("acme_directory")
    @classmethod
    def _acme(cls, value: str) -> str:
        if value in LETSENCRYPT:
            return LETSENCRYPT[value]
        try:
            return https_url(value)
        except ValueError:
            raise ValueError(
                "must be letsencrypt, letsencrypt-staging or the https:// URL of an RFC 8555 directory"
            ) from None
