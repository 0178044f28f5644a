"""Settings of role backup (roles/backup.py): the daily archive copied off the host with restic.

To another host over SFTP (restic's sftp:user@host:/path) or to an S3-compatible store
(s3:https://host/bucket[/prefix]). None by default: no off-host copies.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import AfterValidator, Field, field_validator, model_validator

from openclaw_kit.secrets import Secret
from openclaw_kit.settings.rules import FieldError, Port, SecretRef, Strict, check, pem_file

_SFTP_REPOSITORY = re.compile(
    r"^sftp:(?P<user>[a-z_][a-z0-9_.-]{0,31})@(?P<host>[A-Za-z0-9.-]{1,253}):(?P<path>/[A-Za-z0-9._/-]*)$"
)
_S3_REPOSITORY = re.compile(r"^s3:https://(?P<host>[A-Za-z0-9.-]{1,253})(:\d{1,5})?/[A-Za-z0-9._/-]+$")
_HOST_KEY = re.compile(
    r"^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+={0,3}$"
)
SECRET_FIELDS = {"password", "s3_access_key_id", "s3_secret_access_key"}


def _repository(value: str) -> str:
    if value.startswith("s3:") and "@" in urlsplit(value[3:]).netloc:
        raise ValueError("must not carry credentials; give them as s3_access_key_id and s3_secret_access_key secrets")
    if not (_SFTP_REPOSITORY.match(value) or _S3_REPOSITORY.match(value)):
        raise ValueError(
            "must be a restic repository sftp:user@host:/absolute/path or s3:https://host/bucket[/prefix] "
            "(no credentials, spaces or quotes in it)"
        )
    return value


def _ca_file(value: str) -> str:
    pem_file(value)
    try:
        with open(value, "rb") as pem:
            x509.load_pem_x509_certificates(pem.read())
    except ValueError as error:
        raise ValueError(f"must be a PEM file of CA certificates restic can load ({error})") from None
    return value


HostKey = Annotated[
    str,
    AfterValidator(
        lambda v: check(
            _HOST_KEY, v, "must be an SSH public host key like 'ssh-ed25519 AAAA...' (type and key, no host name)"
        )
    ),
]


class OffsiteBackup(Strict):
    repository: Annotated[str, AfterValidator(_repository)] = Field(
        description="The restic repository: `sftp:user@host:/path` or `s3:https://host/bucket[/prefix]`, no "
        "credentials in it.")
    password: SecretRef = Field(
        description="Secret reference (`${VAR}`) to the repository's password, 16 characters or more.")
    sftp_host_key: HostKey | None = Field(
        None, description="SFTP: the target's SSH host key (`ssh-ed25519 AAAA...`, type and key), checked strictly; "
        "required for SFTP.")
    sftp_port: Port = Field(22, description="SFTP: the target's SSH port.")
    s3_access_key_id: SecretRef | None = Field(
        None, description="S3: secret reference to the access key id; required for S3.")
    s3_secret_access_key: SecretRef | None = Field(
        None, description="S3: secret reference to the secret access key; required for S3.")
    s3_ca_file: Annotated[str, AfterValidator(_ca_file)] | None = Field(
        None, description="S3: a PEM file of CA certificates on the controller that restic trusts besides the "
        "system's (a MinIO on a private CA).")
    keep_daily: Annotated[int, Field(ge=1, le=3650)] = Field(
        7, description="Daily snapshots of the archive kept (restic forget), 1-3650; the audit log's are kept "
        "`audit_retention_days`.")
    keep_weekly: Annotated[int, Field(ge=0, le=520)] = Field(4, description="Weekly snapshots kept, 0-520.")
    keep_monthly: Annotated[int, Field(ge=0, le=1200)] = Field(12, description="Monthly snapshots kept, 0-1200.")

    @property
    def sftp(self) -> dict | None:
        """user, host, path of an SFTP repository; None for S3."""
        match = _SFTP_REPOSITORY.match(self.repository)
        return match.groupdict() if match else None

    @field_validator("password", mode="after")
    @classmethod
    def _strong_password(cls, value: Secret) -> Secret:
        length = len(value.reveal())
        if length < 16:
            raise ValueError(
                f"${{{value.name}}} is {length} characters long: "
                "the key to every off-host backup must be at least 16 characters"
            )
        return value

    @model_validator(mode="after")
    def _target(self):
        s3_keys = (self.s3_access_key_id, self.s3_secret_access_key)
        if self.sftp:
            if self.sftp_host_key is None:
                raise FieldError(
                    "sftp_host_key",
                    None,
                    "an SFTP repository needs the target's SSH host key (ssh-keyscan it, check it, paste 'type key')",
                )
            if any(s3_keys) or self.s3_ca_file:
                raise FieldError(
                    "repository",
                    self.repository,
                    "is an SFTP repository: s3_access_key_id, s3_secret_access_key and s3_ca_file do not apply",
                )
        else:
            if not all(s3_keys):
                raise FieldError(
                    "s3_access_key_id" if self.s3_access_key_id is None else "s3_secret_access_key",
                    None,
                    "an S3 repository needs s3_access_key_id and s3_secret_access_key",
                )
            if self.sftp_host_key is not None:
                raise FieldError("sftp_host_key", self.sftp_host_key, "applies to an SFTP repository only")
        return self

    def secrets(self) -> dict[str, Secret]:
        """The S3 credentials by environment variable name, as restic reads them."""
        if self.s3_access_key_id is None or self.s3_secret_access_key is None:
            return {}
        return {"AWS_ACCESS_KEY_ID": self.s3_access_key_id, "AWS_SECRET_ACCESS_KEY": self.s3_secret_access_key}


class BackupSettings(Strict):
    ROLE: ClassVar[str] = "backup"

    offsite_backup: OffsiteBackup | None = Field(
        None, description="Off-host copies of the daily archive and the audit log with restic; none: no off-host "
        "copies.")
