"""``Idempotency-Key``: the same key with the same body answers the first event (200); with a
different body, 422 ``idempotency_key_reused`` and nothing is created."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dispatcher.clock import utcnow
from dispatcher.database import open_database
from dispatcher.store import IdempotencyKeyReused, Store, encode_payload, same_request

from .conftest import ADMIN_TOKEN
from .harness import Receiver, poll

AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def stored(event_type, data):
    return encode_payload(event_type, utcnow(), data)


@pytest.mark.parametrize(("first", "again", "same"), [
    (("a.b", {}), ("a.b", {}), True),
    (("a.b", {"x": 1, "y": [1, {"p": "q", "o": None}]}),
     ("a.b", {"y": [1, {"o": None, "p": "q"}], "x": 1}), True),  # key order aside
    (("a.b", {"s": "é\u2028"}), ("a.b", {"s": "é\u2028"}), True),
    (("a.b", {"x": 1}), ("a.c", {"x": 1}), False),  # another type
    (("a.b", {"x": 1}), ("a.b", {"x": 2}), False),
    (("a.b", {"x": 1}), ("a.b", {"x": 1, "y": 2}), False),
    (("a.b", {"x": 1}), ("a.b", {"x": True}), False),  # 1 == True in Python, not in JSON
    (("a.b", {"x": 1}), ("a.b", {"x": 1.0}), False),  # numbers as written
    (("a.b", {"x": [1, 2]}), ("a.b", {"x": [2, 1]}), False),  # list order counts
    (("a.b", {"x": None}), ("a.b", {}), False),
])
def test_same_request(first, again, same):
    assert same_request(stored(*first), *again) is same


def test_same_key_same_body_is_the_first_event_and_another_body_is_422(admin):
    with Receiver() as receiver:
        admin.post("/v1/subscriptions", json={"url": receiver.url})
        key = {"idempotency-key": "order-42"}
        first = admin.post("/v1/events", json={"type": "order.paid", "data": {"n": 1, "m": 2}},
                           headers=key)
        assert first.status_code == 202, first.text
        # The same body, other key order and spacing: the first event again.
        again = admin.post("/v1/events", content=b'{ "data": {"m": 2, "n": 1},"type":"order.paid"}',
                           headers=key | {"content-type": "application/json"})
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        for body in ({"type": "order.paid", "data": {"n": 2, "m": 2}},
                     {"type": "order.refunded", "data": {"n": 1, "m": 2}},
                     {"type": "order.paid"}):
            reused = admin.post("/v1/events", json=body, headers=key)
            assert reused.status_code == 422, reused.text
            error = reused.json()["error"]
            assert error["code"] == "idempotency_key_reused"
            assert "Idempotency-Key" in error["message"]
        # Nothing was created: one event, one delivery, one request at the receiver.
        assert [e["id"] for e in admin.get("/v1/events").json()["data"]] == [first.json()["id"]]
        assert len(admin.get("/v1/deliveries").json()["data"]) == 1
        poll(lambda: receiver.count() == 1)
        assert json.loads(receiver.requests[0].body)["data"] == {"n": 1, "m": 2}


def test_concurrent_requests_with_one_key_make_one_event(app_server, admin):
    bodies = [{"type": "a.b", "data": {"which": i % 2}} for i in range(16)]

    def send(body):
        with httpx.Client(base_url=app_server.url, headers=AUTH, timeout=30) as client:
            return body, client.post("/v1/events", json=body, headers={"idempotency-key": "k"})

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, bodies))
    [(winner, made)] = [(b, r) for b, r in answers if r.status_code == 202]
    for body, answer in answers:
        if body == winner:
            assert answer.status_code in (200, 202), answer.text
            assert answer.json()["id"] == made.json()["id"]
        else:
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["code"] == "idempotency_key_reused"
    events = admin.get("/v1/events").json()["data"]
    assert [(e["id"], e["data"]) for e in events] == [(made.json()["id"], winner["data"])]


def test_after_the_ttl_the_key_takes_a_new_body(serve):
    # 2 s: the repeat just after the first must fall inside it on a loaded machine too.
    with serve(idempotency_ttl_seconds=2) as admin:
        key = {"idempotency-key": "k"}
        first = admin.post("/v1/events", json={"type": "a.b", "data": {"v": 1}}, headers=key)
        assert first.status_code == 202
        assert admin.post("/v1/events", json={"type": "a.b", "data": {"v": 2}},
                          headers=key).status_code == 422
        later = poll(lambda: (r := admin.post("/v1/events", json={"type": "a.b", "data": {"v": 2}},
                                              headers=key)).status_code == 202 and r,
                     timeout=10, interval=0.2, message="the key to expire")
        assert later.json()["id"] != first.json()["id"]
        assert len(admin.get("/v1/events").json()["data"]) == 2


# ---- inside the group commit, on each engine ----------------------------------------------


async def _keys_in_one_group(settings) -> dict:
    here, elsewhere = Store(open_database(settings)), Store(open_database(settings))
    try:
        for url in ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b"):
            await here.create_subscription("key_owner", {"url": url, "event_types": ["o.*"]})
        key = (await here.create_key("publisher", "keys"))["id"]
        other = (await here.create_key("publisher", "other"))["id"]

        async def accept(store, body, idem, publisher=key, ttl=60.0):
            try:
                return await store.accept_event(publisher, "o.paid", body, idem, ttl,
                                                check_key=True)
            except IdempotencyKeyReused:
                return "reused"

        found: dict = {}
        # One group: 8 repeats of one key, 2 of them with another body, keys of their own,
        # events with none, and the same key from another publisher.
        calls = ([accept(here, {"n": 1}, "k-1") for _ in range(6)]
                 + [accept(here, {"n": 2}, "k-1") for _ in range(2)]
                 + [accept(here, {"n": i}, f"own-{i}") for i in range(10)]
                 + [accept(here, {"n": i}, None) for i in range(10)]
                 + [accept(here, {"n": 1}, "k-1", publisher=other)])
        found["group"] = await asyncio.gather(*calls)
        # A later group: the stored first event answers.
        found["later"] = await accept(here, {"n": 1}, "k-1")
        found["later reused"] = await accept(here, {"n": 2}, "k-1")
        # Two processes' groups race for one new key: one event.
        found["race"] = await asyncio.gather(*(
            accept(store, {"n": 7}, "raced") for _ in range(5) for store in (here, elsewhere)))
        # An expired key gives way to a new event, once.
        found["expired first"] = await accept(here, {"n": 3}, "short")
        await asyncio.sleep(0.05)
        found["expired"] = await asyncio.gather(*(
            accept(here, {"n": 4}, "short", ttl=0.01) for _ in range(3)))
        found["events"] = (await here.list_events(None, None, None, None, None, 200,
                                                  "asc")).rows
        found["deliveries"] = (await here.list_deliveries(None, limit=500)).rows
        return found
    finally:
        await here.db.dispose()
        await elsewhere.db.dispose()


def test_repeats_of_a_key_in_one_group_make_one_event_and_answer_it(settings):
    found = asyncio.run(_keys_in_one_group(settings))
    group = found["group"]
    first, created = group[0]
    assert created and first["deliveries"] == 2
    for event, again in group[1:6]:
        assert (event["id"], event["deliveries"], again) == (first["id"], 2, False)
    assert group[6:8] == ["reused", "reused"]
    own = group[8:18]
    assert all(created for _, created in own) and len({e["id"] for e, _ in own}) == 10
    plain = group[18:28]
    assert all(created for _, created in plain) and len({e["id"] for e, _ in plain}) == 10
    other, created = group[28]
    assert created and other["id"] != first["id"]  # keys are per publisher

    later, again = found["later"]
    assert (later["id"], later["deliveries"], again) == (first["id"], 2, False)
    assert found["later reused"] == "reused"

    raced = found["race"]
    assert len({e["id"] for e, _ in raced}) == 1
    assert sum(created for _, created in raced) == 1
    assert {e["deliveries"] for e, _ in raced} == {2}

    expired_first, _ = found["expired first"]
    renewed = found["expired"]
    assert len({e["id"] for e, _ in renewed}) == 1 and renewed[0][0]["id"] != expired_first["id"]
    assert sum(created for _, created in renewed) == 1

    events = found["events"]
    # 1 (k-1) + 10 own + 10 plain + other's k-1 + raced + short twice = 25, nothing else.
    assert len(events) == 25, len(events)
    assert len(found["deliveries"]) == 2 * 25
