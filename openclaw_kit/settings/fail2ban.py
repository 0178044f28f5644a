"""Settings of role fail2ban (roles/fail2ban.py).

An address with fail2ban_maxretry failures within fail2ban_findtime_seconds is dropped for
fail2ban_bantime_seconds (at least 10 s, so a ban is felt; at most a year, so a mistaken one ends).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from openclaw_kit.settings.rules import Strict


class Fail2banSettings(Strict):
    ROLE: ClassVar[str] = "fail2ban"

    fail2ban_bantime_seconds: Annotated[int, Field(ge=10, le=31_536_000)] = Field(
        3600, description="How long a banned address is dropped: 10 s (so a ban is felt) to a year (so a mistaken "
        "one ends).")
    fail2ban_findtime_seconds: Annotated[int, Field(ge=10, le=86_400)] = Field(
        600, description="The window in which failures are counted, 10-86400 s.")
    fail2ban_maxretry: Annotated[int, Field(ge=1, le=100)] = Field(
        5, description="Failures within the window before a ban, 1-100.")
