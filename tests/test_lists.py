"""Lists: cursor pagination, order, and filters."""

from __future__ import annotations

from .harness import Receiver


def walk(admin, path, **params):
    seen, cursor, pages = [], None, 0
    while True:
        page = admin.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [row["id"] for row in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


def test_cursor_pagination_in_both_orders(admin):
    made = [admin.post("/v1/subscriptions", json={"url": f"http://127.0.0.1:9/{i}"}).json()["id"]
            for i in range(7)]
    newest_first, pages = walk(admin, "/v1/subscriptions", limit=3)
    assert (newest_first, pages) == (made[::-1], 3)
    oldest_first, pages = walk(admin, "/v1/subscriptions", limit=3, order="asc")
    assert (oldest_first, pages) == (made, 3)
    exact, pages = walk(admin, "/v1/subscriptions", limit=7)
    assert (len(exact), pages) == (7, 1)


def test_delivery_filters_by_status_type_subscription_and_time(admin):
    with Receiver() as receiver:
        first = admin.post("/v1/subscriptions", json={"url": receiver.url}).json()["id"]
        second = admin.post("/v1/subscriptions", json={"url": receiver.url,
                                                       "enabled": False}).json()["id"]
        early = admin.post("/v1/events", json={"type": "a.early"}).json()
        late = admin.post("/v1/events", json={"type": "a.late"}).json()
        boundary = late["created_at"]

        def ids(**params):
            rows = admin.get("/v1/deliveries", params={"limit": 500, **params}).json()["data"]
            return {(r["event_id"], r["subscription_id"]) for r in rows}

        assert ids() == {(e["id"], s) for e in (early, late) for s in (first, second)}
        assert ids(status="held") == {(early["id"], second), (late["id"], second)}
        assert ids(event_type="a.early") == {(early["id"], first), (early["id"], second)}
        assert ids(subscription_id=first) == {(early["id"], first), (late["id"], first)}
        # since is inclusive, until exclusive, both on created_at.
        assert ids(since=boundary) == {(late["id"], first), (late["id"], second)}
        assert ids(until=boundary) == {(early["id"], first), (early["id"], second)}
        assert ids(since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == set()
        assert ids(since="2000-01-01T00:00:00") == ids()  # no zone: UTC

        events = admin.get("/v1/events", params={"after": early["created_at"]}).json()["data"]
        assert [e["id"] for e in events] == [late["id"]]
        events = admin.get("/v1/events", params={"before": boundary}).json()["data"]
        assert [e["id"] for e in events] == [early["id"]]
        events = admin.get("/v1/events", params={"type": "a.late"}).json()["data"]
        assert [e["id"] for e in events] == [late["id"]]
