"""A subscription's health: as the dashboard shows it, and what recording attempts changes.

``health``: from the last hour's attempts. One failure of a mostly healthy receiver makes it
``degraded``, not ``failing``: failing needs a streak of failures with no success for a
while, or a poor success rate over enough attempts. The thresholds are in the README's
Dashboard section.

``after_attempts``: what a batch of finished attempts does to their subscriptions' failure
streaks (``failing_since``): a success ends one, a failure starts one, a 410 disables at
once, and a streak older than ``DISPATCHER_DISABLE_AFTER_SECONDS`` disables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from .vocabulary import AttemptOutcome

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


class Attempted(NamedTuple):
    """One finished attempt, as the streak rule sees it."""

    subscription_id: str
    outcome: AttemptOutcome
    gone: bool  # the receiver answered 410
    failing_since: datetime | None  # the subscription's streak when the attempt was claimed


@dataclass(frozen=True, slots=True)
class StreakChanges:
    """What a batch of attempts changes, by subscription id. The streaks are as the claim
    saw them: the store checks each change again in its statement (another worker may have
    changed a streak since), and a streak changed meanwhile is settled by the next batch."""

    recovered: frozenset[str]  # a streak ended by a success
    started: frozenset[str]  # failures and no success, with no streak yet: it starts now
    gone: frozenset[str]  # disable at once (410)
    long_failing: frozenset[str]  # failing since before ``stale``: disable
    stale: datetime | None  # streaks that began before this are too long


def after_attempts(attempts: Iterable[Attempted], now: datetime,
                   disable_after: float | None) -> StreakChanges:
    """The subscriptions whose streak ends, starts, or gets them disabled, after a batch of
    attempts; ``disable_after`` None: never disabled for a long streak."""
    stale = now - timedelta(seconds=disable_after) if disable_after is not None else None
    ok: set[str] = set()
    failed: set[str] = set()
    gone: set[str] = set()
    streaking: set[str] = set()
    fresh: set[str] = set()
    old: set[str] = set()
    for sub_id, outcome, is_gone, since in attempts:
        if outcome == AttemptOutcome.SUCCEEDED:
            ok.add(sub_id)
        elif outcome == AttemptOutcome.FAILED:
            failed.add(sub_id)
        if is_gone:
            gone.add(sub_id)
        if since is None:
            fresh.add(sub_id)
        else:
            streaking.add(sub_id)
            if stale is not None and since < stale:
                old.add(sub_id)
    failing = failed - ok  # one success in the batch ends a streak, whatever else failed
    return StreakChanges(
        recovered=frozenset(streaking & ok), started=frozenset(fresh & failing),
        gone=frozenset(gone), long_failing=frozenset(old & failing), stale=stale)
