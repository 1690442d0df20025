"""A subscription's health on the dashboard: a pure function of the last hour's attempts and
its failure streak (dispatcher/health.py); and what a batch of recorded attempts does to the
streaks (``after_attempts``: start, end, disable after a while or at once on a 410)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.health import (
    FAILING_STREAK,
    Attempted,
    Health,
    Rate,
    StreakChanges,
    after_attempts,
    health,
)
from dispatcher.vocabulary import AttemptOutcome

NOW = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


@pytest.mark.parametrize(("enabled", "rate", "failing_since", "expected"), [
    # No traffic, or only successes.
    (True, Rate(0, 0), None, Health.HEALTHY),
    (True, Rate(500, 0), None, Health.HEALTHY),
    # The case: a receiver failing 30 % of the time, right after a failure.
    (True, Rate(463, 198), ago(seconds=2), Health.DEGRADED),
    (True, Rate(463, 198), None, Health.DEGRADED),
    # One failure of a healthy receiver, even with no success since (yet).
    (True, Rate(463, 1), ago(seconds=30), Health.DEGRADED),
    (True, Rate(0, 1), ago(seconds=1), Health.DEGRADED),
    (True, Rate(0, 2), ago(minutes=1), Health.DEGRADED),
    # A streak with no success for long enough is failing, whatever the hour's rate.
    (True, Rate(463, 2), NOW - FAILING_STREAK, Health.FAILING),
    (True, Rate(463, 2), ago(minutes=4, seconds=59), Health.DEGRADED),
    (True, Rate(0, 0), ago(hours=3), Health.FAILING),  # retries are hours apart by now
    # A poor success rate over enough failures is failing, streak or not.
    (True, Rate(0, 3), ago(seconds=5), Health.FAILING),
    (True, Rate(10, 11), None, Health.FAILING),
    (True, Rate(10, 10), None, Health.DEGRADED),  # exactly half succeeded
    (True, Rate(1, 2), ago(seconds=5), Health.DEGRADED),  # too few failures to judge
    # Disabled trumps everything.
    (False, Rate(0, 0), None, Health.DISABLED),
    (False, Rate(0, 50), ago(days=2), Health.DISABLED),
])
def test_health(enabled, rate, failing_since, expected):
    assert health(enabled, rate, failing_since, NOW) is expected


def test_rate():
    assert Rate(3, 1).total == 4 and Rate(3, 1).ratio == 0.75
    assert Rate().ratio is None


OK, FAIL = AttemptOutcome.SUCCEEDED, AttemptOutcome.FAILED
DISABLE_AFTER = 3600.0


def att(sub: str, outcome: AttemptOutcome, since: datetime | None = None,
        gone: bool = False) -> Attempted:
    return Attempted(sub, outcome, gone, since)


def changes(recovered=(), started=(), gone=(), long_failing=()) -> StreakChanges:
    return StreakChanges(frozenset(recovered), frozenset(started), frozenset(gone),
                         frozenset(long_failing), ago(seconds=DISABLE_AFTER))


@pytest.mark.parametrize(("attempts", "expected"), [
    # Nothing recorded, nothing changes.
    ([], changes()),
    # Healthy stays healthy; failing keeps its streak (no statement needed).
    ([att("a", OK)], changes()),
    ([att("a", FAIL, ago(minutes=5))], changes()),
    # A first failure starts a streak; a success ends one.
    ([att("a", FAIL)], changes(started={"a"})),
    ([att("a", OK, ago(minutes=5))], changes(recovered={"a"})),
    # One success in the batch outweighs its failures: no streak starts, one ends.
    ([att("a", FAIL), att("a", OK)], changes()),
    ([att("a", FAIL, ago(hours=2)), att("a", OK, ago(hours=2))], changes(recovered={"a"})),
    # A streak older than DISABLE_AFTER disables; one just younger does not.
    ([att("a", FAIL, ago(seconds=DISABLE_AFTER + 1))], changes(long_failing={"a"})),
    ([att("a", FAIL, ago(seconds=DISABLE_AFTER))], changes()),
    ([att("a", FAIL, ago(seconds=DISABLE_AFTER - 1))], changes()),
    # ... but not when a success of the same batch ended it.
    ([att("a", FAIL, ago(hours=2)), att("a", OK, None)], changes(recovered={"a"})),
    # A 410 disables at once, whatever the streak; it also starts one.
    ([att("a", FAIL, gone=True)], changes(started={"a"}, gone={"a"})),
    ([att("a", FAIL, ago(hours=2), gone=True)], changes(gone={"a"}, long_failing={"a"})),
    # Attempts claimed before and after another worker started the streak.
    ([att("a", FAIL), att("a", FAIL, ago(seconds=1))], changes(started={"a"})),
    # Each subscription on its own.
    ([att("a", OK, ago(minutes=1)), att("b", FAIL), att("c", FAIL, ago(hours=2)),
      att("d", FAIL, gone=True), att("e", OK)],
     changes(recovered={"a"}, started={"b", "d"}, gone={"d"}, long_failing={"c"})),
])
def test_after_attempts(attempts, expected):
    assert after_attempts(attempts, NOW, DISABLE_AFTER) == expected


def test_after_attempts_never_disables_a_long_streak_without_disable_after():
    found = after_attempts([att("a", FAIL, ago(days=30)), att("b", FAIL, gone=True)], NOW, None)
    assert found.long_failing == frozenset() and found.stale is None
    assert found.gone == {"b"} and found.started == {"b"}
