"""A subscription's health on the dashboard: a pure function of the last hour's attempts and
its failure streak (dispatcher/health.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.health import FAILING_STREAK, Health, Rate, health

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
