"""Settings of role logs (roles/logs.py): how long logs, the audit log and backups are kept."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from openclaw_kit.settings.rules import Strict


class LogsSettings(Strict):
    log_retention_days: Annotated[int, Field(ge=1, le=3650)] = 14
    audit_retention_days: Annotated[int, Field(ge=1, le=36500)] = 2555
    # Verified archives of the gateway's state (openclaw backup create), one a day.
    backup_retention_days: Annotated[int, Field(ge=1, le=3650)] = 7
