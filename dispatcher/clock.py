"""Times, always in UTC: the one place that reads the clock, reads a time as UTC, and
writes RFC 3339."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a time without a zone is taken as UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339(value: datetime,
            timespec: Literal["milliseconds", "microseconds"] = "microseconds") -> str:
    """``2026-12-01T22:37:01.949718Z``: the API's form (microseconds), or the logs' (ms)."""
    return as_utc(value).replace(tzinfo=None).isoformat(timespec=timespec) + "Z"
