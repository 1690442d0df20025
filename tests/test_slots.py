"""The worker's slots: which claimed delivery starts next (no I/O, no clock)."""

from __future__ import annotations

from dispatcher.pacing import SLOW_SECONDS
from dispatcher.slots import Slots
from dispatcher.store import Job


def job(sub: str, n: int) -> Job:
    return Job(delivery_id=f"dlv_{sub}_{n}", event_id=f"evt_{n}", subscription_id=sub,
               number=1, round_number=1, trigger="scheduled", resume_status=None,
               url="http://127.0.0.1:9/", headers={}, keys=[], payload=b"{}")


def take_all(slots: Slots, now: float = 0.0) -> list[str]:
    taken = []
    while (j := slots.take(now)) is not None:
        taken.append(j.delivery_id)
    return taken


def test_a_subscription_at_its_cap_parks_the_rest_and_others_go_past():
    slots = Slots(concurrency=10, base_cap=2)
    slots.add([job("a", n) for n in range(5)] + [job("b", 0)])
    assert take_all(slots) == ["dlv_a_0", "dlv_a_1", "dlv_b_0"]
    assert slots.in_flight == 3 and slots.waiting == 3
    assert slots.full() == {"a"}  # a cap's worth of a parked: claims leave it out


def test_a_finished_attempt_starts_its_subscriptions_next_parked_one_in_order():
    slots = Slots(concurrency=4, base_cap=2)
    jobs = [job("a", n) for n in range(5)]
    slots.add(jobs)
    take_all(slots)
    assert slots.full() == {"a"}
    assert slots.finished(jobs[0], 0.1) is False  # 3 parked: still a cap's worth
    slots.add([job("c", 0)])
    assert take_all(slots) == ["dlv_a_2", "dlv_c_0"]  # the parked one first
    assert slots.finished(jobs[1], 0.1) is False
    assert take_all(slots) == ["dlv_a_3"]
    assert slots.finished(jobs[2], 0.1) is True  # 1 parked now: a may be claimed again
    assert take_all(slots) == ["dlv_a_4"]


def test_concurrency_bounds_every_subscription_together():
    slots = Slots(concurrency=3, base_cap=2)
    slots.add([job(s, n) for s in "abc" for n in range(2)])
    assert take_all(slots) == ["dlv_a_0", "dlv_a_1", "dlv_b_0"]


def test_a_fast_receiver_opens_to_a_quarter_of_the_slots_and_a_slow_one_closes_it():
    slots = Slots(concurrency=40, base_cap=2)
    jobs = [job("a", n) for n in range(30)]
    slots.add(jobs)
    assert len(take_all(slots)) == 2
    slots.finished(jobs[0], 0.01)
    slots.finished(jobs[1], 0.01)  # two fast in a row: the cap opens to 40 // 4
    assert slots.cap("a") == 10 and len(take_all(slots)) == 10
    slots.mark_slow(SLOW_SECONDS + 1)  # still running after SLOW_SECONDS: back to 2
    assert slots.cap("a") == 2


def test_drain_gives_back_everything_not_started():
    slots = Slots(concurrency=10, base_cap=1)
    slots.add([job("a", n) for n in range(3)] + [job("b", 0)])
    assert take_all(slots) == ["dlv_a_0", "dlv_b_0"]
    slots.add([job("c", 0)])
    assert sorted(slots.drain()) == ["dlv_a_1", "dlv_a_2", "dlv_c_0"]
    assert slots.waiting == 0 and take_all(slots) == []
