"""Operators: replay, recover, event replay, auto-disable, held, rate limits, caps, prune."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from dispatcher.clock import utcnow
from dispatcher.database import open_database
from dispatcher.models import delivery_table
from dispatcher.store import DeliveryFilter, Store

from .databases import rows, scalar
from .harness import Receiver, Reply, WorkerProcess, poll
from .test_delivery import attempts_of, deliveries_of, publish, settled, subscribe


def first_time_per_event(first: Reply, then: Reply):
    """A receiver answer: ``first`` the first time an event id arrives, ``then`` after."""
    seen: set[str] = set()
    lock = threading.Lock()

    def reply(n, request):
        with lock:
            fresh = request.headers["webhook-id"] not in seen
            seen.add(request.headers["webhook-id"])
        return first if fresh else then

    return reply


def test_bulk_replay_sends_each_failed_delivery_once_more(admin):
    # 400 fails at once; after the replay the receiver answers 503 once, then 200.
    answers: dict[str, list[int]] = {}

    def reply(n, request):
        seen = answers.setdefault(request.headers["webhook-id"], [])
        seen.append(n)
        return Reply([400, 503, 200][min(len(seen), 3) - 1])

    with Receiver(reply) as receiver, Receiver() as other:
        subscribe(admin, receiver.url)
        healthy = subscribe(admin, other.url)
        events = [publish(admin, "invoice.paid", {"n": n}) for n in range(5)]
        for event in events:
            settled(admin, event["id"], 2)
        replay = admin.post("/v1/deliveries/replay", json={"status": "failed"})
        assert replay.status_code == 202 and replay.json() == {"replayed": 5}
        poll(lambda: all(d["status"] == "succeeded"
                         for e in events for d in deliveries_of(admin, e["id"])), 15)
        for event in events:
            for delivery in deliveries_of(admin, event["id"]):
                attempts = [(a["trigger"], a["outcome"], a["status_code"])
                            for a in attempts_of(admin, delivery["id"])]
                if delivery["subscription_id"] == healthy["id"]:
                    assert attempts == [("scheduled", "succeeded", 200)]
                else:
                    assert attempts == [("scheduled", "failed", 400),
                                        ("replay", "failed", 503), ("replay", "succeeded", 200)]
        # Each failed delivery was sent exactly once more (plus its retry), the rest never.
        assert Counter(receiver.ids()) == {e["id"]: 3 for e in events}
        assert other.count() == 5
        again = admin.post("/v1/deliveries/replay", json={"status": "failed"})
        assert again.json() == {"replayed": 0}


def test_replay_of_100000_matches_goes_in_batches(database_url, make_settings):
    settings = make_settings()

    async def scenario() -> tuple[int, list[int], int]:
        store = Store(open_database(settings))
        try:
            sub = await store.create_subscription("key_x", {"url": "http://127.0.0.1:9/x"})
            event, _ = await store.accept_event("key_x", "a.b", {}, None, 60)
            now = utcnow()
            from dispatcher import ids

            async with store.writer.begin() as conn:
                for start in range(0, 100_000, 10_000):
                    await conn.execute(sa.insert(delivery_table), [
                        {"id": ids.new_id("dlv"), "event_id": event["id"], "event_type": "a.b",
                         "subscription_id": sub["id"], "status": "failed", "attempts": 1,
                         "retry_base": 0, "next_trigger": "scheduled", "created_at": now,
                         "updated_at": now} for _ in range(start, start + 10_000)])
            batches: list[int] = []
            count = await store.replay(DeliveryFilter(status="failed"), batch=2000,
                                       progress=batches.append)
            return count, batches, await store.count_replayable(DeliveryFilter())
        finally:
            await store.db.dispose()

    count, batches, left = asyncio.run(scenario())
    assert count == 100_000 and left == 0
    assert max(batches) == 2000 and len(batches) == 50
    assert scalar(database_url, "SELECT count(*) FROM delivery WHERE status = 'pending' "
                                "AND next_trigger = 'replay' AND retry_base = attempts") \
        == 100_000


def test_recover_touches_only_its_window(admin):
    with Receiver(first_time_per_event(Reply(404), Reply(200))) as receiver, \
            Receiver(lambda n, r: Reply(404)) as bystander:
        sub = subscribe(admin, receiver.url)
        subscribe(admin, bystander.url)
        before, inside, after = (publish(admin, "a.b", {"n": n}) for n in range(3))
        for event in (before, inside, after):
            settled(admin, event["id"], 2)
        recovered = admin.post(f"/v1/subscriptions/{sub['id']}/recover",
                               json={"since": inside["created_at"],
                                     "until": after["created_at"]})
        assert recovered.status_code == 202 and recovered.json() == {"replayed": 1}
        poll(lambda: Counter(receiver.ids())[inside["id"]] == 2)
        settled(admin, inside["id"], 2)
        statuses = {e["id"]: {d["subscription_id"]: d["status"]
                              for d in deliveries_of(admin, e["id"])}
                    for e in (before, inside, after)}
        assert statuses[inside["id"]][sub["id"]] == "succeeded"
        assert statuses[before["id"]][sub["id"]] == statuses[after["id"]][sub["id"]] == "failed"
        assert Counter(receiver.ids()) == {before["id"]: 1, inside["id"]: 2, after["id"]: 1}
        assert bystander.count() == 3  # the other subscription's failures are untouched


def test_event_replay_to_chosen_or_currently_matching_subscriptions(admin):
    with Receiver() as first, Receiver() as later, Receiver() as other_type:
        one = subscribe(admin, first.url)
        event = publish(admin, "invoice.paid")
        settled(admin, event["id"])
        two = subscribe(admin, later.url, event_types=["invoice.*"])
        subscribe(admin, other_type.url, event_types=["user.*"])

        everyone = admin.post(f"/v1/events/{event['id']}/replay")
        assert everyone.status_code == 202 and everyone.json() == {"deliveries": 2}
        chosen = admin.post(f"/v1/events/{event['id']}/replay",
                            json={"subscription_ids": [two["id"]]})
        assert chosen.json() == {"deliveries": 1}
        settled(admin, event["id"], 4)
        assert first.ids() == [event["id"]] * 2 and later.ids() == [event["id"]] * 2
        assert other_type.count() == 0
        replayed = [d for d in deliveries_of(admin, event["id"])
                    if d["subscription_id"] in (one["id"], two["id"]) and d["attempts"]]
        triggers = Counter(attempts_of(admin, d["id"])[0]["trigger"] for d in replayed)
        assert triggers == {"scheduled": 1, "replay": 3}
        missing = admin.post(f"/v1/events/{event['id']}/replay",
                             json={"subscription_ids": ["sub_01m86rswxhnpqcvw07mtqn2ye2"]})
        assert missing.status_code == 404
        assert admin.post("/v1/events/evt_01m86rswxhnpqcvw07mtqn2ye2/replay").status_code == 404


def test_failing_subscription_is_disabled_and_held_deliveries_arrive_after_reenable(serve):
    healthy = threading.Event()

    def reply(n, request):
        return Reply(200 if healthy.is_set() else 500)

    with serve(disable_after_seconds=1.0, retry_schedule=(0.3,) * 10) as admin, \
            Receiver(reply) as receiver:
        sub = subscribe(admin, receiver.url)
        first = publish(admin, "a.b", {"n": 0})
        after = poll(lambda: (s := admin.get(f"/v1/subscriptions/{sub['id']}").json())
                     ["enabled"] is False and s, 15, message="disabled for failing")
        assert after["disabled_reason"] == "failing"
        # Its pending delivery is held, and new events make held deliveries: nothing dropped.
        poll(lambda: deliveries_of(admin, first["id"])[0]["status"] == "held")
        later = [publish(admin, "a.b", {"n": n}) for n in range(1, 4)]
        for event in later:
            assert [d["status"] for d in deliveries_of(admin, event["id"])] == ["held"]
        seen = receiver.count()

        healthy.set()
        enabled = admin.patch(f"/v1/subscriptions/{sub['id']}", json={"enabled": True})
        assert enabled.json()["enabled"] is True
        for event in [first, *later]:
            [delivery] = settled(admin, event["id"])
            assert delivery["status"] == "succeeded"
        assert set(receiver.ids()[seen:]) == {e["id"] for e in [first, *later]}


def test_rate_limit_holds_across_workers_without_failing_deliveries(serve, database_url,
                                                                    tmp_path):
    with serve() as admin, Receiver() as receiver:
        extra = WorkerProcess(database_url, tmp_path / "worker.log",
                              DISPATCHER_POLL_INTERVAL_SECONDS="0.2").start()
        try:
            sub = subscribe(admin, receiver.url, rate_limit_per_second=5)
            events = [publish(admin, "a.b", {"n": n}) for n in range(25)]
            poll(lambda: receiver.count() >= 25, 20, message="25 arrivals")
            for event in events:
                [delivery] = settled(admin, event["id"])
                assert (delivery["status"], delivery["attempts"]) == ("succeeded", 1)
        finally:
            assert extra.stop() == 0
        # Tokens belong to the second a start is admitted in, and a start lands a moment
        # later: any k wall seconds hold at most k + 1 windows' worth (docs/api.md).
        per_second = Counter(int(r.wall) for r in receiver.requests)
        seconds = range(min(per_second), max(per_second) + 1)
        for k in (1, 2, 3):
            for first in seconds:
                landed = sum(per_second[s] for s in range(first, first + k))
                assert landed <= 5 * (k + 1), (k, per_second)
        span = max(r.wall for r in receiver.requests) - min(r.wall for r in receiver.requests)
        assert span >= 3.0  # 25 at 5/s cannot arrive in much less than 4 s
        assert scalar(database_url, "SELECT count(*) FROM attempt") == 25
        assert sub["rate_limit_per_second"] == 5


def test_a_receiver_that_never_answers_holds_at_most_the_cap(serve, database_url):
    cap, hanging = 4, 40
    with serve(worker_concurrency=16, max_in_flight_per_subscription=cap,
               delivery_timeout_seconds=8) as admin, \
            Receiver(lambda n, r: Reply(delay=9)) as dead:
        subscribe(admin, dead.url, event_types=["dead.*"])
        for n in range(hanging):
            publish(admin, "dead.letter", {"n": n})
        poll(lambda: dead.count() >= cap, 5, message="the dead receiver's slots taken")
        with Receiver() as healthy_receiver:
            for i in range(20):
                subscribe(admin, f"{healthy_receiver.url}/{i}", event_types=["live.*"])
            for n in range(10):
                publish(admin, "live.event", {"n": n})
            # All 200 healthy deliveries finish while the dead receiver's first attempts are
            # still hanging (they end only at the 8 s deadline).
            poll(lambda: scalar(database_url, "SELECT count(*) FROM delivery WHERE "
                                "event_type = 'live.event' AND status = 'succeeded'") == 200,
                 7, message="200 healthy deliveries")
            assert scalar(database_url, "SELECT count(*) FROM attempt a JOIN delivery d "
                          "ON d.id = a.delivery_id WHERE d.event_type = 'dead.letter'") == 0
        assert dead.count() == cap  # never more than the cap in flight


def test_prune_removes_only_old_finished_deliveries(admin, database_url, make_settings):
    with Receiver(lambda n, r: Reply(200 if r.headers["x-kind"] == "ok" else 400)) as receiver:
        subscribe(admin, receiver.url, headers={"x-kind": "ok"})
        subscribe(admin, receiver.url, headers={"x-kind": "bad"})
        held = subscribe(admin, receiver.url, enabled=False)
        old = publish(admin)
        settled(admin, old["id"], 3)
    settings = make_settings()

    async def prune(include_failed: bool) -> dict:
        store = Store(open_database(settings))
        try:
            return await store.prune(utcnow() + timedelta(seconds=1), include_failed)
        finally:
            await store.db.dispose()

    counts = asyncio.run(prune(False))
    # The one event pruned: dispatcher.delivery.failed about the 400, which no subscription
    # names (an event with no delivery left).
    assert counts == {"deliveries": 1, "attempts": 1, "events": 1, "portal_links": 0}
    left = {r[0] for r in rows(database_url, "SELECT status FROM delivery")}
    assert left == {"failed", "held"}
    assert scalar(database_url, "SELECT count(*) FROM attempt") == 1
    counts = asyncio.run(prune(True))
    # The held one stays.
    assert counts == {"deliveries": 1, "attempts": 1, "events": 0, "portal_links": 0}
    assert [d["subscription_id"] for d in deliveries_of(admin, old["id"])] == [held["id"]]
    admin.delete(f"/v1/subscriptions/{held['id']}")  # cancelled: prunable
    assert asyncio.run(prune(False)) == {"deliveries": 1, "attempts": 0, "events": 1,
                                     "portal_links": 0}
    assert scalar(database_url, "SELECT count(*) FROM event") == 0
