"""Settings of roles tls and nginx (roles/tls.py, roles/nginx.py): the names served and their certificate."""

from __future__ import annotations

from pydantic import Field, field_validator

from openclaw_kit.settings.rules import Domain, Email, PemFile, Strict, https_url

LETSENCRYPT = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}


class TlsSettings(Strict):
    domain: Domain
    extra_domains: list[Domain] = []
    admin_email: Email
    acme_directory: str = Field(default="letsencrypt", validate_default=True)
    # A CA bundle on the controller to trust for a private ACME server (the sandbox's pebble).
    acme_ca_file: PemFile | None = None

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
