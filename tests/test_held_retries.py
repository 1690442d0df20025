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
