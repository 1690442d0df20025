"""Payload filters through the API, on both engines: stored, shown, changed, applied at
fan-out (a delivery exists only when the filter matches), tried with filter-test, and
refused with the place named when they break the rules."""

from __future__ import annotations

import pytest

from .harness import Receiver, poll

BIG = {"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]}}


def _subscribe(admin, url, **fields):
    answer = admin.post("/v1/subscriptions", json={"url": url, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _publish(admin, event_type, data):
    answer = admin.post("/v1/events", json={"type": event_type, "data": data})
    assert answer.status_code == 202, answer.text
    return answer.json()


def _error(answer, status, code):
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    return error["message"]


def test_only_events_the_filter_matches_get_a_delivery(admin):
    with Receiver() as big, Receiver() as everything:
        filtered = _subscribe(admin, big.url, event_types=["invoice.*"], filter=BIG)
        _subscribe(admin, everything.url, event_types=["invoice.*"])
        assert filtered["filter"] == BIG
        events = {
            "large euro": (_publish(admin, "invoice.paid", {"amount": 250, "currency": "EUR"}),
                           2),
            "small": (_publish(admin, "invoice.paid", {"amount": 5, "currency": "EUR"}), 1),
            "yen": (_publish(admin, "invoice.paid", {"amount": 900, "currency": "JPY"}), 1),
            # A string where a number is wanted: no match, and no error.
            "text amount": (_publish(admin, "invoice.paid",
                                     {"amount": "900", "currency": "USD"}), 1),
            "no amount": (_publish(admin, "invoice.paid", {"currency": "USD"}), 1),
            "other type": (_publish(admin, "user.created",
                                    {"amount": 250, "currency": "EUR"}), 0),
        }
        for name, (event, count) in events.items():
            assert event["deliveries"] == count, name
        poll(lambda: everything.count() == 5 and big.count() == 1, 15,
             message="the deliveries arrived")
        assert big.ids() == [events["large euro"][0]["id"]]


def test_a_filter_is_shown_changed_and_removed(admin):
    sub = _subscribe(admin, "http://127.0.0.1:9/hook", filter={"data.kind": "a"})
    url = f"/v1/subscriptions/{sub['id']}"
    assert admin.get(url).json()["filter"] == {"data.kind": "a"}
    listed = admin.get("/v1/subscriptions").json()["data"]
    assert [s["filter"] for s in listed if s["id"] == sub["id"]] == [{"data.kind": "a"}]
    # Left out: unchanged.
    assert admin.patch(url, json={"description": "x"}).json()["filter"] == {"data.kind": "a"}
    changed = admin.patch(url, json={"filter": {"data.kind": {"$ne": "a"}}})
    assert changed.status_code == 200, changed.text
    assert admin.get(url).json()["filter"] == {"data.kind": {"$ne": "a"}}
    assert _publish(admin, "thing.done", {"kind": "a"})["deliveries"] == 0
    assert _publish(admin, "thing.done", {"kind": "b"})["deliveries"] == 1
    # null: every event of its types again.
    assert admin.patch(url, json={"filter": None}).json()["filter"] is None
    assert admin.get(url).json()["filter"] is None
    assert _publish(admin, "thing.done", {"kind": "a"})["deliveries"] == 1
    assert _subscribe(admin, "http://127.0.0.1:9/other")["filter"] is None


@pytest.mark.parametrize("query, place", [
    ({"data.a": {"$regex": "x"}}, "filter.data.a.$regex"),
    ({"data.a": {"$gt": [1]}}, "filter.data.a.$gt"),
    ({"data.a": {"$in": 3}}, "filter.data.a.$in"),
    ({"$or": [{"a": 1}, {"b": {"$exists": "yes"}}]}, "filter.$or[1].b.$exists"),
    ([1, 2], "filter"),
    ("data.a", "filter"),
    ({"a": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {
        "$eq": 1}}}}}}}}}, "filter"),
    ({"data.a": {"$in": ["x" * 1000] * 9}}, "filter"),
])
def test_a_filter_that_breaks_the_rules_is_refused_with_its_place(admin, query, place):
    sub = _subscribe(admin, "http://127.0.0.1:9/hook", filter={"data.ok": True})
    for answer in (
        admin.post("/v1/subscriptions", json={"url": "http://127.0.0.1:9/x", "filter": query}),
        admin.patch(f"/v1/subscriptions/{sub['id']}", json={"filter": query}),
        admin.post("/v1/subscriptions/filter-test",
                   json={"filter": query, "event": {"type": "a.b", "data": {}}}),
    ):
        assert _error(answer, 422, "invalid_filter").startswith(place + ": ")
    # Nothing changed.
    assert admin.get(f"/v1/subscriptions/{sub['id']}").json()["filter"] == {"data.ok": True}


def test_filter_test_says_whether_an_event_would_match(admin):
    def tried(data, query=None, event_type="invoice.paid"):
        answer = admin.post("/v1/subscriptions/filter-test", json={
            "filter": BIG if query is None else query,
            "event": {"type": event_type, "data": data}})
        assert answer.status_code == 200, answer.text
        return answer.json()["matches"]

    assert tried({"amount": 100, "currency": "USD"}) is True
    assert tried({"amount": 99, "currency": "USD"}) is False
    assert tried({"amount": "100", "currency": "USD"}) is False
    assert tried({}, {"type": "invoice.paid"}) is True
    assert tried({}, {"type": {"$in": ["user.created"]}}) is False
    assert tried({}, {"timestamp": {"$gt": "2000-01-01T00:00:00Z"}}) is True
    assert tried({}, {}) is True
    # A subscriber key may try filters too.
    key = admin.post("/v1/api-keys", json={"role": "subscriber", "name": "try"}).json()
    answer = admin.post("/v1/subscriptions/filter-test",
                        headers={"authorization": f"Bearer {key['key']}"},
                        json={"filter": {}, "event": {"type": "a.b"}})
    assert answer.status_code == 200 and answer.json() == {"matches": True}, answer.text
    publisher = admin.post("/v1/api-keys", json={"role": "publisher", "name": "p"}).json()
    answer = admin.post("/v1/subscriptions/filter-test",
                        headers={"authorization": f"Bearer {publisher['key']}"},
                        json={"filter": {}, "event": {"type": "a.b"}})
    _error(answer, 403, "forbidden")


@pytest.mark.parametrize("body, code", [
    ({"event": {"type": "a.b"}}, "validation_error"),                 # no filter
    ({"filter": None, "event": {"type": "a.b"}}, "invalid_filter"),
    ({"filter": {}}, "validation_error"),                             # no event
    ({"filter": {}, "event": {"type": "not a type"}}, "validation_error"),
    ({"filter": {}, "event": {"type": "a.b", "data": [1]}}, "validation_error"),
])
def test_filter_test_refuses_what_it_cannot_try(admin, body, code):
    _error(admin.post("/v1/subscriptions/filter-test", json=body), 422, code)


def test_an_event_replay_to_every_matching_subscription_follows_the_filters(admin):
    taken = _subscribe(admin, "http://127.0.0.1:9/a", event_types=["order.*"],
                       filter={"data.region": "eu"})
    skipped = _subscribe(admin, "http://127.0.0.1:9/b", event_types=["order.*"],
                         filter={"data.region": "us"})
    event = _publish(admin, "order.placed", {"region": "eu"})
    assert event["deliveries"] == 1
    replayed = admin.post(f"/v1/events/{event['id']}/replay", json={})
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["deliveries"] == 1
    # Named, a subscription gets it whatever its filter says.
    named = admin.post(f"/v1/events/{event['id']}/replay",
                       json={"subscription_ids": [skipped["id"]]})
    assert named.status_code == 202 and named.json()["deliveries"] == 1, named.text
    found = admin.get(f"/v1/events/{event['id']}/deliveries").json()["data"]
    assert sorted(d["subscription_id"] for d in found) == sorted(
        [taken["id"], taken["id"], skipped["id"]])
