"""Settings of role logs (roles/logs.py): how long logs, the audit log and backups are kept."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from openclaw_kit.settings.rules import Strict


class LogsSettings(Strict):
    ROLE: ClassVar[str] = "logs"

    log_retention_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        14, description="Days (and at most as many files) of the gateway's and nginx's logs kept, 1-3650; the "
        "journal's MaxRetentionSec.")
    audit_retention_days: Annotated[int, Field(ge=1, le=36500)] = Field(
        2555, description="Days the kit's audit log is kept, 1-36500 (default 7 years); also on the off-host "
        "copies (role backup).")
    backup_retention_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        7, description="Days the daily verified archives of the gateway's state (`openclaw backup create`) are "
        "kept, 1-3650.")
