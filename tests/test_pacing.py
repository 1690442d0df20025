"""The per-subscription cap and the retries' rate: pure decisions, as tables."""

from __future__ import annotations

import pytest

from dispatcher.pacing import (
    FRESH_SECONDS,
    LAG_HIGH,
    LAG_LOW,
    RETRY_CLAIM,
    RETRY_RATE_FLOOR,
    SLOW_SECONDS,
    in_flight_cap,
    retries_per_claim,
    retry_rate_after,
    streak_after,
)


@pytest.mark.parametrize(("base", "concurrency", "streak", "cap"), [
    (16, 1000, 0, 16),  # new here, or slow: the base
    (16, 1000, 15, 16),  # not yet base fast attempts in a row
    (16, 1000, 16, 250),  # shown fast: a quarter of the slots
    (16, 1000, 10_000, 250),
    (16, 32, 16, 16),  # a quarter smaller than the base: never below the base
    (4, 16, 4, 4),
    (1, 8, 1, 2),
])
def test_in_flight_cap(base, concurrency, streak, cap):
    assert in_flight_cap(base, concurrency, streak) == cap


@pytest.mark.parametrize(("streak", "seconds", "after"), [
    (0, 0.002, 1),
    (41, 0.5, 42),
    (41, SLOW_SECONDS, 0),  # one slow attempt ends the streak
    (41, 15.0, 0),  # a deadline reached
    (0, 30.0, 0),
])
def test_streak_after(streak, seconds, after):
    assert streak_after(streak, seconds) == after


@pytest.mark.parametrize(("rate", "lag", "held_back", "after"), [
    (100.0, 0.0005, True, 125.0),  # a quick loop, and retries waited: faster
    (100.0, 0.0005, False, 100.0),  # a rate that was not the limit stays
    (100.0, LAG_LOW, True, 100.0),  # between the marks: as it was
    (100.0, 0.004, True, 100.0),
    (400.0, LAG_HIGH + 0.001, True, 200.0),  # behind: half
    (400.0, 0.250, False, 200.0),
    (30.0, 0.250, True, RETRY_RATE_FLOOR),  # never below the floor
    (RETRY_RATE_FLOOR, 0.250, True, RETRY_RATE_FLOOR),
])
def test_retry_rate_after(rate, lag, held_back, after):
    assert retry_rate_after(rate, lag, held_back) == after


@pytest.mark.parametrize(("wanted", "holding_enough", "since_fresh", "most"), [
    (200, True, 0.1, 0),  # a claim's worth held already: first attempts only
    (200, True, 60.0, 0),
    (200, False, 0.1, RETRY_CLAIM),  # fresh ones coming in: few retries per claim
    (200, False, FRESH_SECONDS - 0.01, RETRY_CLAIM),
    (4, False, 0.1, 4),  # a claim smaller than the cap
    (200, False, FRESH_SECONDS, 200),  # nothing fresh lately: a whole claim
    (200, False, 3600.0, 200),
])
def test_retries_per_claim(wanted, holding_enough, since_fresh, most):
    assert retries_per_claim(wanted, holding_enough, since_fresh) == most
