"""dispatcher.policy: how an answer is read, Retry-After, and the retry schedule.

Contract (API.md, "What a subscriber receives"): 2xx = success; 3xx is not followed and
fails; 410 fails and disables the subscription; 408, 425, 429, 5xx, timeouts and connection
errors are retried; other 4xx fail at once. Retry-After (seconds or HTTP date) on 429/503 is
honoured, capped by the schedule's longest delay. Default schedule 5 s, 5 m, 30 m, 2 h, 5 h,
10 h, 14 h, 20 h, 24 h with ±20 % jitter.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import tenacity

from dispatcher.config import DEFAULT_RETRY_SCHEDULE, Settings, lease_for
from dispatcher.policy import (
    Outcome,
    Policies,
    RetryPolicy,
    Step,
    Verdict,
    classify,
    parse_retry_after,
)

S, M, H = 1, 60, 3600
CONTRACT_SCHEDULE = (5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 14 * H, 20 * H, 24 * H)
JITTER = 0.2

SUCCESS = [200, 201, 202, 204, 226, 299]
RETRYABLE = [None, 408, 425, 429, 500, 501, 502, 503, 504, 599]
FAIL_AT_ONCE = [100, 301, 302, 304, 307, 308, 399, 400, 401, 403, 404, 405, 409, 413, 415,
                422, 451, 499, 600]


# --------------------------------------------------------------------------- classify

@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (None, Verdict.RETRYABLE),  # timeout / connection error
        (200, Verdict.SUCCEEDED),
        (201, Verdict.SUCCEEDED),
        (204, Verdict.SUCCEEDED),
        (299, Verdict.SUCCEEDED),
        (301, Verdict.FAILED),  # 3xx: not followed, counts as failure
        (302, Verdict.FAILED),
        (304, Verdict.FAILED),
        (399, Verdict.FAILED),
        (400, Verdict.FAILED),
        (401, Verdict.FAILED),
        (404, Verdict.FAILED),
        (408, Verdict.RETRYABLE),
        (409, Verdict.FAILED),
        (410, Verdict.GONE),
        (413, Verdict.FAILED),
        (422, Verdict.FAILED),
        (425, Verdict.RETRYABLE),
        (429, Verdict.RETRYABLE),
        (500, Verdict.RETRYABLE),
        (502, Verdict.RETRYABLE),
        (503, Verdict.RETRYABLE),
        (599, Verdict.RETRYABLE),
        (600, Verdict.FAILED),  # not an HTTP status class the contract retries
        (100, Verdict.FAILED),  # 1xx is not a success
    ],
    ids=lambda v: repr(v) if not isinstance(v, Verdict) else v.value,
)
def test_classify(status, verdict):
    assert classify(status) is verdict


@pytest.mark.parametrize("status", SUCCESS + RETRYABLE + FAIL_AT_ONCE + [410])
def test_outcome_verdict_is_classify(status):
    assert Outcome(status).verdict is classify(status)


# --------------------------------------------------------------------------- Retry-After

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1", 1.0),
        (" 120 ", 120.0),
        ("86400", 86400.0),
        # HTTP dates (IMF-fixdate), relative to NOW
        ("Wed, 01 Jan 2025 12:02:00 GMT", 120.0),
        (format_datetime(NOW + timedelta(hours=3), usegmt=True), 3 * 3600.0),
        ("Wed, 01 Jan 2025 13:02:00 +0100", 120.0),  # numeric zone
        # dates in the past (or now) mean "retry now", never a negative delay
        ("Wed, 01 Jan 2025 12:00:00 GMT", 0.0),
        ("Wed, 01 Jan 2025 11:59:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        # garbage → no usable value
        ("soon", None),
        ("abc", None),
        ("-5", None),  # delay-seconds is 1*DIGIT
        ("1.5", None),
        ("120 seconds", None),
        ("Wed, 99 Foo 2025 99:99:99 GMT", None),
        ("\u00b2", None),  # '²': str.isdigit() is True but it is not a number
        ("\u00b9\u00b2\u00b3", None),  # '¹²³'
        # nothing
        ("", None),
        ("   ", None),
        (None, None),
    ],
    ids=repr,
)
def test_parse_retry_after(value, expected):
    got = parse_retry_after(value, NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_parse_retry_after_date_follows_now():
    header = "Wed, 01 Jan 2025 12:10:00 GMT"
    assert parse_retry_after(header, NOW) == pytest.approx(600.0)
    assert parse_retry_after(header, NOW + timedelta(minutes=5)) == pytest.approx(300.0)
    assert parse_retry_after(header, NOW + timedelta(minutes=15)) == 0.0


# --------------------------------------------------------------------------- RetryPolicy


def make_policy(schedule=(5.0, 300.0), jitter=JITTER, seed=1234) -> RetryPolicy:
    return RetryPolicy(tuple(schedule), jitter=jitter, rng=random.Random(seed))


def test_policy_is_a_tenacity_policy():
    assert isinstance(make_policy()._retrying, tenacity.Retrying)


@pytest.mark.parametrize("attempt", [1, 2, 3, 10])
@pytest.mark.parametrize("status", SUCCESS)
def test_success_succeeds_at_any_attempt(status, attempt):
    step = make_policy().next_step(attempt, Outcome(status))
    assert step == Step("succeeded")
    assert step.delay is None and step.gone is False


@pytest.mark.parametrize("retry_after", [None, 60.0])
@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_gone_fails_and_disables(attempt, retry_after):
    step = make_policy().next_step(attempt, Outcome(410, retry_after))
    assert step == Step("failed", delay=None, gone=True)


@pytest.mark.parametrize("retry_after", [None, 60.0])
@pytest.mark.parametrize("status", FAIL_AT_ONCE)
def test_non_retryable_fails_at_once(status, retry_after):
    step = make_policy(schedule=CONTRACT_SCHEDULE).next_step(1, Outcome(status, retry_after))
    assert step == Step("failed", delay=None, gone=False)


@pytest.mark.parametrize("status", RETRYABLE)
@pytest.mark.parametrize("attempt", range(1, len(CONTRACT_SCHEDULE) + 1))
def test_retryable_waits_schedule_n_minus_1_within_jitter(attempt, status):
    step = make_policy(schedule=CONTRACT_SCHEDULE, seed=attempt).next_step(
        attempt, Outcome(status)
    )
    base = CONTRACT_SCHEDULE[attempt - 1]
    assert step.status == "pending"
    assert step.gone is False
    assert base * (1 - JITTER) <= step.delay <= base * (1 + JITTER)


@pytest.mark.parametrize("status", [None, 429, 500])
@pytest.mark.parametrize("attempt", range(1, len(CONTRACT_SCHEDULE) + 1))
def test_jitter_stays_within_bounds_and_varies(attempt, status):
    """Many samples from a seeded RNG: all inside [d(1-j), d(1+j)], and spread out."""
    policy = make_policy(schedule=CONTRACT_SCHEDULE, seed=attempt * 7919)
    base = CONTRACT_SCHEDULE[attempt - 1]
    delays = [policy.next_step(attempt, Outcome(status)).delay for _ in range(2000)]
    lo, hi = base * (1 - JITTER), base * (1 + JITTER)
    assert all(lo <= d <= hi for d in delays), (min(delays), max(delays), lo, hi)
    assert len(set(delays)) > 1000  # jitter actually varies
    # and uses the whole band, not a sliver of it: both ends are reached closely
    assert min(delays) < base * (1 - 0.9 * JITTER)
    assert max(delays) > base * (1 + 0.9 * JITTER)
    # centred on the scheduled delay
    mean = sum(delays) / len(delays)
    assert abs(mean - base) < base * JITTER * 0.1


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.5])
def test_jitter_fraction_is_respected(jitter):
    policy = make_policy(schedule=(100.0,), jitter=jitter, seed=99)
    delays = [policy.next_step(1, Outcome(503)).delay for _ in range(1000)]
    assert all(100 * (1 - jitter) <= d <= 100 * (1 + jitter) for d in delays)
    if jitter == 0.0:
        assert set(delays) == {100.0}
    else:
        assert max(delays) - min(delays) > 100 * jitter  # spread over more than half the band


def test_same_seed_same_delays_different_seed_different_delays():
    def run(seed):
        policy = make_policy(schedule=CONTRACT_SCHEDULE, seed=seed)
        return [policy.next_step(n, Outcome(500)).delay for n in range(1, 10)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_default_rng_is_used_when_none_given():
    policy = RetryPolicy((10.0, 20.0), jitter=JITTER)
    delays = [policy.next_step(2, Outcome(None)).delay for _ in range(500)]
    assert all(16.0 <= d <= 24.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize("status", [None, 408, 429, 500, 503])
@pytest.mark.parametrize(
    ("attempt", "expected_status", "base"),
    [(1, "pending", 5.0), (2, "pending", 300.0), (3, "failed", None), (4, "failed", None),
     (50, "failed", None)],
)
def test_exhaustion_with_two_step_schedule(status, attempt, expected_status, base):
    step = make_policy(schedule=(5, 300)).next_step(attempt, Outcome(status))
    assert step.status == expected_status
    assert step.gone is False
    if base is None:
        assert step.delay is None
    else:
        assert base * (1 - JITTER) <= step.delay <= base * (1 + JITTER)


def test_default_schedule_runs_nine_retries_then_fails():
    policy = make_policy(schedule=DEFAULT_RETRY_SCHEDULE)
    steps = [policy.next_step(n, Outcome(500)) for n in range(1, 11)]
    assert [s.status for s in steps] == ["pending"] * 9 + ["failed"]
    for step, base in zip(steps, CONTRACT_SCHEDULE, strict=False):
        assert base * (1 - JITTER) <= step.delay <= base * (1 + JITTER)


def test_default_schedule_is_the_contract_schedule():
    assert tuple(DEFAULT_RETRY_SCHEDULE) == CONTRACT_SCHEDULE
    assert tuple(Settings.model_fields["retry_schedule"].default) == CONTRACT_SCHEDULE
    assert Settings.model_fields["retry_jitter"].default == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [("0.2,0.5,1", (0.2, 0.5, 1.0)), ("5, 300 ,1800", (5.0, 300.0, 1800.0)), ("7", (7.0,))],
)
def test_retry_schedule_setting_is_comma_separated_seconds(raw, parsed):
    assert Settings(retry_schedule=raw).retry_schedule == parsed


@pytest.mark.parametrize("status", RETRYABLE)
def test_empty_schedule_fails_at_first_retryable_error(status):
    step = make_policy(schedule=()).next_step(1, Outcome(status))
    assert step == Step("failed")


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [(Outcome(200), Step("succeeded")), (Outcome(410), Step("failed", gone=True)),
     (Outcome(404), Step("failed")), (Outcome(429, 30.0), Step("failed"))],
)
def test_empty_schedule_other_outcomes(outcome, expected):
    assert make_policy(schedule=()).next_step(1, outcome) == expected


# ------------------------------------------------------------- Retry-After in the policy

@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    ("schedule", "attempt", "retry_after", "delay"),
    [
        ((5, 300), 1, 60.0, 60.0),  # longer than the scheduled 5 s: honoured exactly
        ((5, 300), 2, 10.0, 10.0),  # shorter than the scheduled 300 s: honoured too
        ((5, 300), 1, 0.0, 0.0),
        ((5, 300), 1, 300.0, 300.0),  # equal to the cap
        ((5, 300), 1, 301.0, 300.0),  # capped by max(schedule)
        ((5, 300), 2, 1e9, 300.0),
        ((300, 5), 2, 1e9, 300.0),  # the cap is the longest delay, not the last one
        (CONTRACT_SCHEDULE, 1, 7 * 24 * 3600.0, 24 * 3600.0),
        (CONTRACT_SCHEDULE, 9, 3600.0, 3600.0),
        (CONTRACT_SCHEDULE, 1, float("inf"), 24 * 3600.0),
    ],
)
def test_retry_after_overrides_wait_capped_by_longest_delay(
    status, schedule, attempt, retry_after, delay
):
    step = make_policy(schedule=schedule).next_step(attempt, Outcome(status, retry_after))
    assert step.status == "pending"
    assert step.delay == pytest.approx(delay)  # no jitter on an explicit Retry-After


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_does_not_extend_the_retry_budget(status):
    step = make_policy(schedule=(5, 300)).next_step(3, Outcome(status, 10.0))
    assert step == Step("failed")


@pytest.mark.parametrize("status", [408, 425, 500, 502, 504])
def test_retry_after_is_only_honoured_on_429_and_503(status):
    """The contract: "Retry-After … on 429/503 is honoured". On other retryable answers the
    schedule applies (policy.RETRY_AFTER_STATUS = {429, 503})."""
    step = make_policy(schedule=(5, 300), seed=3).next_step(1, Outcome(status, 200.0))
    assert step.status == "pending"
    assert 5 * (1 - JITTER) <= step.delay <= 5 * (1 + JITTER)


def test_retry_after_end_to_end_from_header():
    """Header text → parse_retry_after → policy delay."""
    policy = make_policy(schedule=(5, 300))
    for header, expected in [("120", 120.0), ("Wed, 01 Jan 2025 12:01:00 GMT", 60.0),
                             ("99999", 300.0)]:
        step = policy.next_step(1, Outcome(429, parse_retry_after(header, NOW)))
        assert step == Step("pending", delay=pytest.approx(expected))


@pytest.mark.parametrize("schedule, attempts", [
    (None, 3),                   # the global (5, 300): two retries
    ((1.0,), 2),                 # its own: one retry
    ((1.0, 2.0, 3.0, 4.0), 5),
])
def test_each_schedule_has_its_policy(schedule, attempts):
    policies = Policies(make_policy(schedule=(5, 300)), JITTER)
    policy = policies.of(schedule)
    steps = [policy.next_step(n, Outcome(500)).status for n in range(1, 7)]
    assert steps.index("failed") + 1 == attempts
    assert policies.of(schedule) is policy  # made once


def test_own_schedule_delays_follow_it():
    policy = Policies(make_policy(schedule=(5, 300)), 0.0).of((7.0, 11.0))
    assert [policy.next_step(n, Outcome(503)).delay for n in (1, 2)] == [7.0, 11.0]


@pytest.mark.parametrize("timeout, lease", [(15, 40), (60, 130), (1, 12)])
def test_a_lease_covers_two_deadlines_and_ten_seconds(timeout, lease):
    assert lease_for(timeout) == lease
