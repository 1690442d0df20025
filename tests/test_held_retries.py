"""Held retries: a token bucket at the rate the loop's lag sets; no clock of its own."""

from __future__ import annotations

from dispatcher.held_retries import BURST_SECONDS, HeldRetries
from dispatcher.pacing import LAG_HIGH, RETRY_RATE_FLOOR, RETRY_RATE_START, RETRY_RATE_STEP
from dispatcher.store import Job


def job(n: int) -> Job:
    return Job(delivery_id=f"dlv_{n}", event_id="evt_1", subscription_id="sub_1", number=2,
               round_number=2, trigger="scheduled", resume_status=None, url="http://x/",
               headers={}, keys=[], payload=b"{}")


def ids(jobs: list[Job]) -> list[str]:
    return [j.delivery_id for j in jobs]


def test_retries_start_as_tokens_come_oldest_first():
    held = HeldRetries(now=0.0)
    held.hold([job(n) for n in range(50)])
    assert ids(held.release(0.0)) == ["dlv_0"]  # one token to begin with
    # 10 ms at 100/s is one more; tokens never pile up past a burst's worth.
    assert ids(held.release(0.01)) == ["dlv_1"]
    burst = int(RETRY_RATE_START * BURST_SECONDS)
    assert ids(held.release(10.0)) == [f"dlv_{n}" for n in range(2, 2 + burst)]
    assert len(held) == 50 - 2 - burst


def test_the_rate_grows_only_when_retries_waited_for_it():
    held = HeldRetries(now=0.0)
    held.looked(0.0)  # nothing held back: the rate was not the limit
    assert held.rate == RETRY_RATE_START
    held.hold([job(n) for n in range(50)])
    held.release(0.0)
    held.looked(0.0)
    assert held.rate == RETRY_RATE_START + RETRY_RATE_STEP
    held.looked(0.0)  # nothing waited since the last look
    assert held.rate == RETRY_RATE_START + RETRY_RATE_STEP
    for _ in range(10):
        held.looked(LAG_HIGH * 2)
    assert held.rate == RETRY_RATE_FLOOR


def test_nothing_held_releases_nothing_and_a_drain_gives_every_id_back():
    held = HeldRetries(now=0.0)
    assert held.release(5.0) == []
    held.hold([job(n) for n in range(3)])
    assert held.drain() == ["dlv_0", "dlv_1", "dlv_2"]
    assert len(held) == 0 and held.release(10.0) == []


def _waiting() -> HeldRetries:
    """Retries held back for the rate: a quick look would raise it."""
    held = HeldRetries(now=0.0)
    held.hold([job(n) for n in range(50)])
    held.release(0.0)
    return held


def test_first_attempts_claimed_later_than_usual_slow_retries_down():
    held = _waiting()
    held.fresh_claimed([0.001, 0.002, 0.0015])  # the usual: 1 ms
    held.looked(0.0)
    assert held.rate == RETRY_RATE_START + RETRY_RATE_STEP  # within the usual: faster
    held.release(1.0)
    # 10 ms later than the least seen, with the loop itself on time: half.
    held.fresh_claimed([0.011, 0.012, 0.013])
    held.looked(0.0)
    assert held.rate == (RETRY_RATE_START + RETRY_RATE_STEP) / 2


def test_a_clock_offset_between_machines_is_not_lateness():
    held = _waiting()
    # The API's clock 2 s behind this worker's: every first attempt looks 2 s late.
    for _ in range(3):
        held.release(1.0)
        held.fresh_claimed([2.001, 2.0015, 2.002])
        held.looked(0.0)
    assert held.rate == RETRY_RATE_START + 3 * RETRY_RATE_STEP


def test_no_first_attempt_since_the_last_look_leaves_only_the_loops_lag():
    held = _waiting()
    held.fresh_claimed([0.001])
    held.looked(0.0)
    held.release(1.0)
    held.looked(0.0)  # none claimed meanwhile: nothing late
    assert held.rate == RETRY_RATE_START + 2 * RETRY_RATE_STEP
