"""Settings of role audit (roles/audit.py): auditd watching the kit's files."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from openclaw_kit.settings.rules import Strict


class AuditSettings(Strict):
    ROLE: ClassVar[str] = "audit"

    auditd: bool = Field(
        True, description="auditd records every change to the kit's files, where the kernel lets it run (not in "
        "containers); `false`: no auditd.")
