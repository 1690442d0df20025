"""Ordered subscriptions end to end, on both engines: one request at a time, in the order
events were accepted, ``dispatcher-sequence`` without a gap, a failing head holding the rest
back, replays in order; and what the API accepts."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest

from .harness import Receiver, Reply, most_in_flight, poll
from .test_delivery import publish, subscribe

HOLD = 0.03  # each answer takes this long: two requests in flight would arrive closer


class Flaky:
    """Answers 500 to the first try of every ``every``-th sequence number (and of those in
    ``refuse``, 400 on every try), 200 otherwise, after HOLD."""

    def __init__(self, every: int = 5, refuse: frozenset[int] = frozenset()) -> None:
        self.every, self.refuse = every, refuse
        self.tried: set[int] = set()
        self.lock = threading.Lock()

    def __call__(self, n, request) -> Reply:
        sequence = int(request.headers["dispatcher-sequence"])
        with self.lock:
            first = sequence not in self.tried
            self.tried.add(sequence)
        if sequence in self.refuse:
            return Reply(400, delay=HOLD)
        return Reply(500 if first and sequence % self.every == 0 else 200, delay=HOLD)


def first_arrivals(receiver) -> list[int]:
    seen: list[int] = []
    for request in receiver.requests:
        sequence = int(request.headers["dispatcher-sequence"])
        if sequence not in seen:
            seen.append(sequence)
    return seen


def test_events_arrive_one_at_a_time_in_order_with_their_sequence(serve):
    flaky = Flaky()
    with serve(retry_schedule=(0.05, 0.05, 0.05)) as admin, Receiver(flaky) as receiver:
        sub = subscribe(admin, receiver.url, ordered=True)
        assert sub["ordered"] is True
        other = subscribe(admin, receiver.url + "/plain", event_types=["other.*"])
        assert other["ordered"] is False
        # Published from 8 threads at once: the order is the order they were accepted.
        with ThreadPoolExecutor(8) as pool:
            events = list(pool.map(lambda i: publish(admin, "order.placed", {"i": i}),
                                   range(40)))
        assert all(e["deliveries"] == 1 for e in events)
        poll(lambda: len(first_arrivals(receiver)) == 40, 30, 0.1,
             message="all 40 arrived")
        assert first_arrivals(receiver) == list(range(1, 41))
        assert most_in_flight(receiver.requests) == 1
        # Each request arrived after the answer to the one before was written.
        assert all(b.at >= a.answered for a, b in pairwise(receiver.requests))
        # Retries kept their number: 8 sequences (5, 10, … 40) failed once each.
        poll(lambda: receiver.count() == 48, 10, message="the last retry arrived")
        retried = [int(r.headers["dispatcher-sequence"]) for r in receiver.requests]
        assert all(retried.count(s) == 2 for s in range(5, 41, 5))
        # The sequence follows acceptance: each event's number matches its delivery order.
        by_event = {r.headers["webhook-id"]: int(r.headers["dispatcher-sequence"])
                    for r in receiver.requests}
        assert sorted(by_event.values()) == list(range(1, 41))


def test_a_head_that_fails_for_good_lets_the_rest_go_and_a_replay_goes_in_order(serve):
    flaky = Flaky(every=10_000, refuse=frozenset({3, 6}))
    with serve(retry_schedule=(0.05,)) as admin, Receiver(flaky) as receiver:
        sub = subscribe(admin, receiver.url, ordered=True)
        for i in range(8):
            publish(admin, "order.placed", {"i": i})
        poll(lambda: len(first_arrivals(receiver)) == 8, 20, 0.1, message="all 8 arrived")
        assert first_arrivals(receiver) == list(range(1, 9))
        failed = admin.get("/v1/deliveries", params={"status": "failed"}).json()["data"]
        assert len(failed) == 2
        # Replayed: 3 then 6, one at a time, still refused (400), never both at once.
        flaky.refuse = frozenset()
        before = receiver.count()
        replayed = admin.post("/v1/deliveries/replay", json={
            "status": "failed", "subscription_id": sub["id"]})
        assert replayed.status_code == 202, replayed.text
        poll(lambda: receiver.count() == before + 2, 20, 0.1, message="the replays arrived")
        assert [int(r.headers["dispatcher-sequence"])
                for r in receiver.requests[before:]] == [3, 6]
        assert most_in_flight(receiver.requests) == 1


def test_disabled_then_enabled_the_held_ones_go_in_order(serve):
    flaky = Flaky(every=10_000)
    with serve() as admin, Receiver(flaky) as receiver:
        sub = subscribe(admin, receiver.url, ordered=True, enabled=False)
        for i in range(10):
            assert publish(admin, "order.placed", {"i": i})["deliveries"] == 1
        assert receiver.count() == 0
        enabled = admin.patch(f"/v1/subscriptions/{sub['id']}", json={"enabled": True})
        assert enabled.status_code == 200, enabled.text
        poll(lambda: receiver.count() == 10, 20, 0.1, message="the held ones arrived")
        assert first_arrivals(receiver) == list(range(1, 11))
        assert most_in_flight(receiver.requests) == 1


def test_made_unordered_those_waiting_go_at_once(serve):
    gate = threading.Event()

    def slow_first(n, request):
        if n == 1:
            gate.wait(10)
        return Reply(200)

    with serve() as admin, Receiver(slow_first) as receiver:
        sub = subscribe(admin, receiver.url, ordered=True)
        for i in range(5):
            publish(admin, "order.placed", {"i": i})
        poll(lambda: receiver.count() == 1, 10, message="the head is in flight")
        # Four wait behind the head, without a due time.
        waiting = [d for d in admin.get("/v1/deliveries").json()["data"]
                   if d["next_attempt_at"] is None and d["status"] == "pending"]
        assert len(waiting) == 4
        changed = admin.patch(f"/v1/subscriptions/{sub['id']}", json={"ordered": False})
        assert changed.status_code == 200 and changed.json()["ordered"] is False
        poll(lambda: receiver.count() == 5, 10, message="the waiting ones went at once")
        gate.set()


@pytest.mark.parametrize("body", [{"ordered": "maybe"}, {"ordered": [True]},
                                  {"ordered": None}])
def test_ordered_must_be_true_or_false(admin, body):
    sub = subscribe(admin, "http://127.0.0.1:9/o")
    for answer in (admin.post("/v1/subscriptions", json={"url": "http://127.0.0.1:9/x",
                                                          **body}),
                   admin.patch(f"/v1/subscriptions/{sub['id']}", json=body)):
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["message"].startswith("ordered: ")
    header = admin.post("/v1/subscriptions", json={
        "url": "http://127.0.0.1:9/h", "headers": {"Dispatcher-Sequence": "1"}})
    assert header.status_code == 422, header.text
