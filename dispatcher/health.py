"""A subscription's health as the dashboard shows it, from the last hour's attempts.

One failure of a mostly healthy receiver makes it ``degraded``, not ``failing``: failing
needs a streak of failures with no success for a while, or a poor success rate over enough
attempts. The thresholds are in the README's Dashboard section.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

WINDOW = timedelta(hours=1)  # the success rate is over attempts started this recently
FAILING_STREAK = timedelta(minutes=5)  # failures and no success for this long: failing
FAILING_RATE = 0.5  # or a success rate under this ...
FAILING_RATE_MIN_FAILURES = 3  # ... once at least this many attempts failed in the window


class Health(StrEnum):
    HEALTHY = "healthy"  # no failed attempt in the window (or no attempt at all)
    DEGRADED = "degraded"  # some failures, but not failing
    FAILING = "failing"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class Rate:
    """Attempts of one subscription in the window, by outcome."""

    succeeded: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed

    @property
    def ratio(self) -> float | None:
        """The share that succeeded, or None without attempts."""
        return self.succeeded / self.total if self.total else None


def health(enabled: bool, rate: Rate, failing_since: datetime | None,
           now: datetime) -> Health:
    """``failing_since``: the start of the subscription's current streak of failed attempts
    (None after a success)."""
    if not enabled:
        return Health.DISABLED
    if failing_since is not None and now - failing_since >= FAILING_STREAK:
        return Health.FAILING
    ratio = rate.ratio
    if ratio is not None and ratio < FAILING_RATE and rate.failed >= FAILING_RATE_MIN_FAILURES:
        return Health.FAILING
    if rate.failed or failing_since is not None:
        return Health.DEGRADED
    return Health.HEALTHY
