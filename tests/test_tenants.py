"""The contract's Tenants section (docs/api.md), on both engines.

One server for the module (its retry schedule is one retry 30 s later, so that a receiver
answering 503 leaves a delivery ``pending`` for the length of a test); every test makes
tenants, keys and event types of its own (``uid()``), so that the tests do not meet.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from dispatcher.config import Settings

from .conftest import ADMIN_TOKEN, TEST_SETTINGS
from .databases import Databases
from .harness import AppServer, Receiver, Reply, poll

NOT_PLAIN = ("Input should", "pydantic", "Value error", "Traceback", "errors.pydantic.dev")


@dataclass
class App:
    server: AppServer
    admin: httpx.Client
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, key: str) -> httpx.Client:
        made = httpx.Client(base_url=self.server.url, timeout=30,
                            headers={"authorization": f"Bearer {key}"})
        self.clients.append(made)
        return made


@pytest.fixture(scope="module")
def app(databases: Databases) -> Iterator[App]:
    settings = Settings(**{**TEST_SETTINGS, "database_url": databases.new(),
                           "retry_schedule": (30.0,)})
    with AppServer(settings) as server, httpx.Client(
        base_url=server.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as admin:
        made = App(server, admin)
        yield made
        for client in made.clients:
            client.close()


def uid() -> str:
    return secrets.token_hex(4)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    what = (f"{response.request.method} {response.request.url} -> {response.status_code} "
            f"{response.text[:300]}")
    assert response.status_code == status, what
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, what
    assert body["error"]["code"] == code, what
    message = body["error"]["message"]
    assert isinstance(message, str) and message, what
    for words in NOT_PLAIN:
        assert words not in response.text, what


def all_pages(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": 500, **params} | ({"cursor": cursor} if cursor else {})
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        rows += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return rows
    raise AssertionError(f"{path}: more than 1000 pages")


def ids_of(rows: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in rows}


def put_tenant(app: App, prefix: str = "t", **body: Any) -> str:
    tenant_id = f"{prefix}-{uid()}"
    made = app.admin.put(f"/v1/tenants/{tenant_id}", json=body)
    assert made.status_code == 201, made.text
    return tenant_id


def subscribe(client: httpx.Client, url: str, types: list[str], **fields: Any) -> dict[str, Any]:
    made = client.post("/v1/subscriptions", json={"url": url, "event_types": types, **fields})
    assert made.status_code == 201, made.text
    return made.json()


def make_key(app: App, tenant_id: str | None, role: str = "subscriber") -> dict[str, Any]:
    body: dict[str, Any] = {"role": role, "name": f"tenants-{uid()}"}
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    made = app.admin.post("/v1/api-keys", json=body)
    assert made.status_code == 201, made.text
    return made.json()


def publish(client: httpx.Client, type_: str, **fields: Any) -> dict[str, Any]:
    accepted = client.post("/v1/events", json={"type": type_, **fields})
    assert accepted.status_code == 202, accepted.text
    return accepted.json()


def settled(app: App, event_id: str, count: int, status: str = "succeeded") -> list[dict]:
    """The event's deliveries, once there are ``count`` and all are in ``status``."""

    def check() -> list[dict[str, Any]] | None:
        rows = all_pages(app.admin, f"/v1/events/{event_id}/deliveries")
        done = len(rows) == count and all(r["status"] == status for r in rows)
        return rows if done else None

    return poll(check, timeout=15, message=f"{count} deliveries of {event_id} {status}")


# ---- the tenant resource ----------------------------------------------------------------------


def test_put_creates_then_replaces_with_defaults(app):
    tenant_id = f"acme-{uid()}"
    path = f"/v1/tenants/{tenant_id}"
    made = app.admin.put(path, json={"name": "Acme", "metadata": {"plan": "pro", "seats": 3}})
    assert made.status_code == 201, made.text
    first = made.json()
    assert set(first) == {"id", "name", "metadata", "created_at", "updated_at"}
    assert first["id"] == tenant_id and first["name"] == "Acme"
    assert first["metadata"] == {"plan": "pro", "seats": 3}
    assert app.admin.get(path).json() == first

    replaced = app.admin.put(path, json={"name": "Acme Corp"})
    assert replaced.status_code == 200, replaced.text
    second = replaced.json()
    assert second["name"] == "Acme Corp" and second["metadata"] == {}, second
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] >= first["updated_at"]

    emptied = app.admin.put(path, json={"metadata": {"plan": "free"}})
    assert emptied.status_code == 200, emptied.text
    assert emptied.json()["name"] is None and emptied.json()["metadata"] == {"plan": "free"}
    no_body = app.admin.put(path)
    assert no_body.status_code == 200, no_body.text
    assert no_body.json()["name"] is None and no_body.json()["metadata"] == {}
    assert app.admin.get(path).json() == no_body.json()


def test_put_without_a_body_creates_an_empty_tenant(app):
    tenant_id = f"bare-{uid()}"
    made = app.admin.put(f"/v1/tenants/{tenant_id}")
    assert made.status_code == 201, made.text
    assert made.json()["name"] is None and made.json()["metadata"] == {}


def test_list_pages_newest_first_and_oldest_first(app):
    prefix = f"page-{uid()}"
    mine = [f"{prefix}-{n}" for n in range(5)]  # ids in creation order, so ties break alike
    for tenant_id in mine:
        assert app.admin.put(f"/v1/tenants/{tenant_id}", json={}).status_code == 201

    for order, expected in (("desc", mine[::-1]), ("asc", mine)):
        seen: list[str] = []
        rows: list[dict[str, Any]] = []
        pages = 0
        cursor = None
        for _ in range(1000):
            params = {"limit": 2} | ({"order": order} if order == "asc" else {})
            page = app.admin.get("/v1/tenants", params=params | (
                {"cursor": cursor} if cursor else {}))
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["data"]) <= 2
            pages += 1
            rows += body["data"]
            cursor = body["next_cursor"]
            if not cursor:
                break
        seen = [r["id"] for r in rows]
        assert pages >= 3, pages
        assert len(seen) == len(set(seen)), "a tenant on two pages"
        assert [t for t in seen if t.startswith(prefix)] == expected, order
        stamps = [r["created_at"] for r in rows]
        assert stamps == sorted(stamps, reverse=order == "desc"), order


def test_delete_then_404_and_unknown_404(app):
    tenant_id = put_tenant(app, "gone")
    deleted = app.admin.delete(f"/v1/tenants/{tenant_id}")
    assert deleted.status_code == 204 and deleted.content == b"", deleted.text
    assert_error(app.admin.get(f"/v1/tenants/{tenant_id}"), 404, "tenant_not_found")
    assert_error(app.admin.delete(f"/v1/tenants/{tenant_id}"), 404, "tenant_not_found")
    assert_error(app.admin.delete(f"/v1/tenants/never-{uid()}"), 404, "tenant_not_found")
    assert_error(app.admin.get(f"/v1/tenants/never-{uid()}"), 404, "tenant_not_found")
    assert tenant_id not in ids_of(all_pages(app.admin, "/v1/tenants"))


# ---- publishing -------------------------------------------------------------------------------


def test_events_reach_only_their_tenants_subscriptions(app):
    a, b = put_tenant(app, "pub-a"), put_tenant(app, "pub-b")
    kind = f"route{uid()}"
    with Receiver() as ra, Receiver() as rb, Receiver() as rn:
        sa_ = subscribe(app.admin, ra.url, [f"{kind}.*"], tenant_id=a)
        sb = subscribe(app.admin, rb.url, [f"{kind}.*"], tenant_id=b)
        sn = subscribe(app.admin, rn.url, [f"{kind}.*"])
        assert (sa_["tenant_id"], sb["tenant_id"], sn["tenant_id"]) == (a, b, None)

        for_a = publish(app.admin, f"{kind}.x", data={"to": "a"}, tenant_id=a)
        for_b = publish(app.admin, f"{kind}.x", data={"to": "b"}, tenant_id=b)
        for_none = publish(app.admin, f"{kind}.x", data={"to": "none"})
        for_all = publish(app.admin, f"{kind}.x", data={"to": "all"}, broadcast=True)
        assert (for_a["tenant_id"], for_a["broadcast"], for_a["deliveries"]) == (a, False, 1)
        assert (for_b["tenant_id"], for_b["broadcast"], for_b["deliveries"]) == (b, False, 1)
        assert (for_none["tenant_id"], for_none["broadcast"], for_none["deliveries"]) == (
            None, False, 1)
        assert (for_all["tenant_id"], for_all["broadcast"], for_all["deliveries"]) == (
            None, True, 3)

        by_sub = {}
        for event, count in ((for_a, 1), (for_b, 1), (for_none, 1), (for_all, 3)):
            by_sub[event["id"]] = {d["subscription_id"]: d for d in settled(app, event["id"],
                                                                            count)}
        # Every delivery is settled, so these are all the requests there will be.
        assert sorted(ra.ids()) == sorted([for_a["id"], for_all["id"]])
        assert sorted(rb.ids()) == sorted([for_b["id"], for_all["id"]])
        assert sorted(rn.ids()) == sorted([for_none["id"], for_all["id"]])
        assert json.loads(next(r.body for r in ra.requests if r.headers["webhook-id"]
                               == for_a["id"]))["data"] == {"to": "a"}

    assert set(by_sub[for_a["id"]]) == {sa_["id"]}
    assert by_sub[for_a["id"]][sa_["id"]]["tenant_id"] == a
    assert by_sub[for_b["id"]][sb["id"]]["tenant_id"] == b
    assert by_sub[for_none["id"]][sn["id"]]["tenant_id"] is None
    broadcast = by_sub[for_all["id"]]
    assert {s: d["tenant_id"] for s, d in broadcast.items()} == {
        sa_["id"]: a, sb["id"]: b, sn["id"]: None}
    # The stored events say the same as their 202s.
    for event in (for_a, for_b, for_none, for_all):
        got = app.admin.get(f"/v1/events/{event['id']}").json()
        assert (got["tenant_id"], got["broadcast"]) == (event["tenant_id"], event["broadcast"])
    # A tenant's delivery list includes the broadcast it received.
    a_list = all_pages(app.admin, "/v1/deliveries", tenant_id=a)
    assert {d["event_id"] for d in a_list} == {for_a["id"], for_all["id"]}


def test_event_for_an_unknown_or_empty_tenant_is_stored_with_no_deliveries(app):
    kind = f"lonely{uid()}"
    empty = put_tenant(app, "empty")
    with Receiver() as rn:
        subscribe(app.admin, rn.url, [f"{kind}.*"])  # tenant-less: must not get them
        for tenant_id in (f"nobody-{uid()}", empty):
            accepted = publish(app.admin, f"{kind}.x", data={"n": 1}, tenant_id=tenant_id)
            assert accepted["deliveries"] == 0 and accepted["tenant_id"] == tenant_id
            stored = app.admin.get(f"/v1/events/{accepted['id']}")
            assert stored.status_code == 200, stored.text
            assert stored.json()["tenant_id"] == tenant_id
            listed = all_pages(app.admin, "/v1/events", tenant_id=tenant_id)
            assert ids_of(listed) == {accepted["id"]}
            assert all_pages(app.admin, f"/v1/events/{accepted['id']}/deliveries") == []
        assert rn.count() == 0


def test_event_type_patterns_apply_within_a_tenant(app):
    tenant_id = put_tenant(app, "patterns")
    kind = f"pat{uid()}"
    with Receiver() as exact, Receiver() as prefix, Receiver() as other:
        s_exact = subscribe(app.admin, exact.url, [f"{kind}.paid"], tenant_id=tenant_id)
        s_prefix = subscribe(app.admin, prefix.url, [f"{kind}.*"], tenant_id=tenant_id)
        subscribe(app.admin, other.url, [f"{kind}.refunded"], tenant_id=tenant_id)
        accepted = publish(app.admin, f"{kind}.paid", tenant_id=tenant_id)
        assert accepted["deliveries"] == 2
        rows = settled(app, accepted["id"], 2)
        assert {r["subscription_id"] for r in rows} == {s_exact["id"], s_prefix["id"]}
        assert exact.ids() == [accepted["id"]] and prefix.ids() == [accepted["id"]]
        assert other.count() == 0


def test_idempotency_key_is_bound_to_the_tenant(app):
    a, b = put_tenant(app, "idem-a"), put_tenant(app, "idem-b")
    kind = f"idem{uid()}.x"
    key = f"order-{uid()}"
    headers = {"idempotency-key": key}
    body = {"type": kind, "data": {"n": 1}}
    first = app.admin.post("/v1/events", json=body | {"tenant_id": a}, headers=headers)
    assert first.status_code == 202, first.text
    again = app.admin.post("/v1/events", json=body | {"tenant_id": a}, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    for other in ({"tenant_id": b}, {"broadcast": True}, {}):
        refused = app.admin.post("/v1/events", json=body | other, headers=headers)
        assert_error(refused, 422, "idempotency_key_reused")
        # The type and data are the same: the message must name what differs.
        assert "tenant" in refused.json()["error"]["message"], refused.text
    # Nothing was made by the refused ones.
    assert all_pages(app.admin, "/v1/events", tenant_id=b) == []
    assert ids_of(all_pages(app.admin, "/v1/events", type=kind)) == {first.json()["id"]}


# ---- keys -------------------------------------------------------------------------------------


def test_scoped_keys_show_their_tenant_and_filter(app):
    tenant_id = put_tenant(app, "keys")
    scoped = make_key(app, tenant_id)
    assert scoped["tenant_id"] == tenant_id and scoped["role"] == "subscriber"
    plain = make_key(app, None)
    assert plain["tenant_id"] is None
    names = f"refused-{uid()}"
    assert_error(app.admin.post("/v1/api-keys", json={
        "role": "subscriber", "name": names, "tenant_id": f"nobody-{uid()}"}),
        404, "tenant_not_found")
    for role in ("publisher", "admin"):
        assert_error(app.admin.post("/v1/api-keys", json={
            "role": role, "name": names, "tenant_id": tenant_id}), 422, "validation_error")
    listed = {k["id"]: k for k in all_pages(app.admin, "/v1/api-keys")}
    assert listed[scoped["id"]]["tenant_id"] == tenant_id
    assert listed[plain["id"]]["tenant_id"] is None
    assert names not in {k["name"] for k in listed.values()}
    filtered = all_pages(app.admin, "/v1/api-keys", tenant_id=tenant_id)
    assert ids_of(filtered) == {scoped["id"]}
    assert all_pages(app.admin, "/v1/api-keys", tenant_id=f"nobody-{uid()}") == []


def test_a_scoped_key_manages_every_subscription_of_its_tenant(app):
    tenant_id = put_tenant(app, "scoped")
    other = put_tenant(app, "scoped-other")
    kind = f"scoped{uid()}"
    key = make_key(app, tenant_id)
    client = app.client(key["key"])
    with Receiver() as receiver:
        by_admin = subscribe(app.admin, receiver.url, [f"{kind}.*"], tenant_id=tenant_id)
        by_key = subscribe(client, receiver.url, [f"{kind}.*"])
        assert by_key["tenant_id"] == tenant_id
        named = subscribe(client, receiver.url, [f"{kind}.*"], tenant_id=tenant_id)
        assert named["tenant_id"] == tenant_id
        assert_error(client.post("/v1/subscriptions", json={
            "url": receiver.url, "tenant_id": other}), 404, "tenant_not_found")
        theirs = subscribe(app.admin, receiver.url, [f"{kind}.*"], tenant_id=other)

        mine = {by_admin["id"], by_key["id"], named["id"]}
        assert ids_of(all_pages(client, "/v1/subscriptions")) == mine
        assert ids_of(all_pages(client, "/v1/subscriptions", tenant_id=tenant_id)) == mine
        assert ids_of(all_pages(app.admin, "/v1/subscriptions", tenant_id=other)) == {
            theirs["id"]}
        got = client.get(f"/v1/subscriptions/{by_admin['id']}")
        assert got.status_code == 200 and got.json()["secret"] == by_admin["secret"]
        changed = client.patch(f"/v1/subscriptions/{by_admin['id']}",
                               json={"description": "by the tenant's key"})
        assert changed.status_code == 200, changed.text

        accepted = publish(app.admin, f"{kind}.x", tenant_id=tenant_id)
        assert accepted["deliveries"] == 3
        rows = settled(app, accepted["id"], 3)
        listed = all_pages(client, "/v1/deliveries")
        assert ids_of(listed) == ids_of(rows)
        assert {d["tenant_id"] for d in listed} == {tenant_id}
        one = next(r for r in rows if r["subscription_id"] == by_admin["id"])
        assert client.get(f"/v1/deliveries/{one['id']}").status_code == 200
        attempts = client.get(f"/v1/deliveries/{one['id']}/attempts")
        assert attempts.status_code == 200, attempts.text
        assert [a["outcome"] for a in attempts.json()["data"]] == ["succeeded"]

        retried = client.post(f"/v1/deliveries/{one['id']}/retry")
        assert retried.status_code == 202, retried.text
        poll(lambda: len(client.get(f"/v1/deliveries/{one['id']}/attempts")
                         .json()["data"]) == 2, timeout=15, message="the retry's attempt")
        assert receiver.ids().count(accepted["id"]) == 4

    tenant = client.get(f"/v1/tenants/{tenant_id}")
    assert tenant.status_code == 200 and tenant.json()["id"] == tenant_id, tenant.text
    assert_error(client.get(f"/v1/tenants/{other}"), 404, "tenant_not_found")
    deleted = client.delete(f"/v1/subscriptions/{by_admin['id']}")
    assert deleted.status_code == 204, deleted.text


# ---- subscriptions ----------------------------------------------------------------------------


def test_admin_sets_a_subscriptions_tenant_which_cannot_change(app):
    tenant_id, other = put_tenant(app, "immutable"), put_tenant(app, "immutable-b")
    url = "https://hooks.example.com/tenants"
    unknown = f"nobody-{uid()}"
    assert_error(app.admin.post("/v1/subscriptions", json={"url": url, "tenant_id": unknown}),
                 404, "tenant_not_found")
    assert all_pages(app.admin, "/v1/subscriptions", tenant_id=unknown) == []

    # Never "*": a broadcast of another test would match it.
    sub = subscribe(app.admin, url, [f"immutable{uid()}.x"], tenant_id=tenant_id)
    plain = subscribe(app.admin, url, [f"immutable{uid()}.x"])
    path = f"/v1/subscriptions/{sub['id']}"
    for value in (other, None, unknown):
        assert_error(app.admin.patch(path, json={"tenant_id": value, "description": "moved"}),
                     422, "tenant_immutable")
    assert_error(app.admin.patch(f"/v1/subscriptions/{plain['id']}",
                                 json={"tenant_id": tenant_id}), 422, "tenant_immutable")
    same = app.admin.patch(path, json={"tenant_id": tenant_id, "description": "kept"})
    assert same.status_code == 200, same.text
    assert same.json()["tenant_id"] == tenant_id and same.json()["description"] == "kept"
    none_same = app.admin.patch(f"/v1/subscriptions/{plain['id']}", json={"tenant_id": None})
    assert none_same.status_code == 200 and none_same.json()["tenant_id"] is None
    assert app.admin.get(path).json()["tenant_id"] == tenant_id
    assert ids_of(all_pages(app.admin, "/v1/subscriptions", tenant_id=tenant_id)) == {sub["id"]}
    assert all_pages(app.admin, "/v1/subscriptions", tenant_id=other) == []


def test_lists_filter_by_tenant(app):
    a, b = put_tenant(app, "filter-a"), put_tenant(app, "filter-b")
    kind = f"filter{uid()}"
    with Receiver() as receiver:
        sa_ = subscribe(app.admin, receiver.url, [f"{kind}.*"], tenant_id=a)
        sb = subscribe(app.admin, receiver.url, [f"{kind}.*"], tenant_id=b)
        ea = publish(app.admin, f"{kind}.x", tenant_id=a)
        eb = publish(app.admin, f"{kind}.x", tenant_id=b)
        ex = publish(app.admin, f"{kind}.x", broadcast=True)
        for event, count in ((ea, 1), (eb, 1), (ex, 2)):
            settled(app, event["id"], count)
    assert ids_of(all_pages(app.admin, "/v1/subscriptions", tenant_id=a)) == {sa_["id"]}
    assert ids_of(all_pages(app.admin, "/v1/events", tenant_id=a)) == {ea["id"]}
    assert ids_of(all_pages(app.admin, "/v1/events", tenant_id=b)) == {eb["id"]}
    a_deliveries = all_pages(app.admin, "/v1/deliveries", tenant_id=a)
    assert {(d["event_id"], d["subscription_id"]) for d in a_deliveries} == {
        (ea["id"], sa_["id"]), (ex["id"], sa_["id"])}
    b_deliveries = all_pages(app.admin, "/v1/deliveries", tenant_id=b, event_type=f"{kind}.x")
    assert {(d["event_id"], d["subscription_id"]) for d in b_deliveries} == {
        (eb["id"], sb["id"]), (ex["id"], sb["id"])}


def test_replay_deliveries_of_one_tenant(app):
    a, b = put_tenant(app, "replay-a"), put_tenant(app, "replay-b")
    kind = f"replay{uid()}"
    with Receiver(lambda n, r: Reply(400)) as failing:
        sa_ = subscribe(app.admin, failing.url, [f"{kind}.*"], tenant_id=a)
        subscribe(app.admin, failing.url, [f"{kind}.*"], tenant_id=b)
        ea = [publish(app.admin, f"{kind}.x", tenant_id=a) for _ in range(2)]
        eb = publish(app.admin, f"{kind}.x", tenant_id=b)
        for event in (*ea, eb):
            settled(app, event["id"], 1, "failed")
        replayed = app.admin.post("/v1/deliveries/replay", json={"tenant_id": a})
        assert replayed.status_code == 202, replayed.text
        assert replayed.json() == {"replayed": 2}

        def replays_done() -> bool:
            rows = all_pages(app.admin, "/v1/deliveries", tenant_id=a)
            return len(rows) == 2 and all(r["attempts"] == 2 and r["status"] == "failed"
                                          for r in rows)

        poll(replays_done, timeout=15, message="tenant a's replays attempted")
        b_rows = all_pages(app.admin, "/v1/deliveries", tenant_id=b)
        assert [(r["attempts"], r["status"]) for r in b_rows] == [(1, "failed")]
        assert sorted(failing.ids()) == sorted([e["id"] for e in ea] * 2 + [eb["id"]])
        assert {r["subscription_id"] for r in all_pages(
            app.admin, "/v1/deliveries", tenant_id=a)} == {sa_["id"]}


def test_event_replay_stays_in_the_events_tenant(app):
    a, b = put_tenant(app, "evreplay-a"), put_tenant(app, "evreplay-b")
    kind = f"evreplay{uid()}"
    with Receiver() as receiver:
        sa_ = subscribe(app.admin, receiver.url, [f"{kind}.*"], tenant_id=a)
        sb = subscribe(app.admin, receiver.url, [f"{kind}.*"], tenant_id=b)
        sn = subscribe(app.admin, receiver.url, [f"{kind}.*"])
        event = publish(app.admin, f"{kind}.x", tenant_id=a)
        settled(app, event["id"], 1)
        path = f"/v1/events/{event['id']}/replay"
        for wrong in ([sb["id"]], [sn["id"]], [sa_["id"], sb["id"]]):
            assert_error(app.admin.post(path, json={"subscription_ids": wrong}),
                         422, "tenant_mismatch")
        assert len(all_pages(app.admin, f"/v1/events/{event['id']}/deliveries")) == 1
        own = app.admin.post(path, json={"subscription_ids": [sa_["id"]]})
        assert own.status_code == 202 and own.json() == {"deliveries": 1}, own.text
        audience = app.admin.post(path)
        assert audience.status_code == 202 and audience.json() == {"deliveries": 1}
        rows = settled(app, event["id"], 3)
        assert {r["subscription_id"] for r in rows} == {sa_["id"]}

        everyone = publish(app.admin, f"{kind}.x", broadcast=True)
        settled(app, everyone["id"], 3)
        anyone = app.admin.post(f"/v1/events/{everyone['id']}/replay",
                                json={"subscription_ids": [sb["id"]]})
        assert anyone.status_code == 202 and anyone.json() == {"deliveries": 1}, anyone.text
        settled(app, everyone["id"], 4)
        none_event = publish(app.admin, f"{kind}.x")
        settled(app, none_event["id"], 1)
        again = app.admin.post(f"/v1/events/{none_event['id']}/replay")
        assert again.status_code == 202 and again.json() == {"deliveries": 1}
        rows = settled(app, none_event["id"], 2)
        assert {r["subscription_id"] for r in rows} == {sn["id"]}
        assert_error(app.admin.post(f"/v1/events/{none_event['id']}/replay",
                                    json={"subscription_ids": [sa_["id"]]}),
                     422, "tenant_mismatch")


# ---- deleting a tenant ------------------------------------------------------------------------


def test_deleting_a_tenant(app):
    doomed, kept = put_tenant(app, "doomed", name="Doomed"), put_tenant(app, "kept")
    kind = f"doomed{uid()}"
    with (Receiver() as ok, Receiver(lambda n, r: Reply(503)) as busy):
        s_ok = subscribe(app.admin, ok.url, [f"{kind}.*"], tenant_id=doomed)
        s_busy = subscribe(app.admin, busy.url, [f"{kind}.*"], tenant_id=doomed)
        s_held = subscribe(app.admin, ok.url, [f"{kind}.*"], tenant_id=doomed, enabled=False)
        s_kept = subscribe(app.admin, ok.url, [f"{kind}.*"], tenant_id=kept)
        doomed_key, kept_key = make_key(app, doomed), make_key(app, kept)
        event = publish(app.admin, f"{kind}.x", tenant_id=doomed)
        kept_event = publish(app.admin, f"{kind}.x", tenant_id=kept)
        assert event["deliveries"] == 3
        settled(app, kept_event["id"], 1)

        def waiting() -> dict[str, dict[str, Any]] | None:
            rows = {d["subscription_id"]: d
                    for d in all_pages(app.admin, f"/v1/events/{event['id']}/deliveries")}
            done = (rows[s_ok["id"]]["status"] == "succeeded"
                    and rows[s_busy["id"]]["status"] == "pending"
                    and rows[s_busy["id"]]["attempts"] == 1
                    and rows[s_held["id"]]["status"] == "held")
            return rows if done else None

        before = poll(waiting, timeout=15, message="succeeded, pending after a 503, held")
        first_made = app.admin.get(f"/v1/tenants/{doomed}").json()["created_at"]
        with httpx.Client(base_url=app.server.url, timeout=30, headers={
                "authorization": f"Bearer {doomed_key['key']}"}) as key_client:
            # Used just before, also where the process remembers live keys (POST /v1/events
            # takes the key from memory: a subscriber's is then refused with 403).
            assert ids_of(all_pages(key_client, "/v1/subscriptions")) == {
                s_ok["id"], s_busy["id"], s_held["id"]}
            assert_error(key_client.post("/v1/events", json={"type": f"{kind}.y"}),
                         403, "forbidden")
            deleted = app.admin.delete(f"/v1/tenants/{doomed}")
            assert deleted.status_code == 204, deleted.text
            for probe in ("/v1/subscriptions", f"/v1/tenants/{doomed}", "/v1/deliveries"):
                assert_error(key_client.get(probe), 401, "unauthorized")
            assert_error(key_client.post("/v1/events", json={"type": f"{kind}.y"}),
                         401, "unauthorized")

    for sub in (s_ok, s_busy, s_held):
        assert_error(app.admin.get(f"/v1/subscriptions/{sub['id']}"), 404, "not_found")
    assert all_pages(app.admin, "/v1/subscriptions", tenant_id=doomed) == []
    after = {d["subscription_id"]: d for d in all_pages(app.admin, "/v1/deliveries",
                                                        tenant_id=doomed)}
    assert {s: d["id"] for s, d in after.items()} == {s: d["id"] for s, d in before.items()}
    assert after[s_ok["id"]]["status"] == "succeeded"
    assert after[s_busy["id"]]["status"] == "cancelled"
    assert after[s_held["id"]]["status"] == "cancelled"
    assert ids_of(all_pages(app.admin, "/v1/events", tenant_id=doomed)) == {event["id"]}
    assert doomed_key["id"] not in ids_of(all_pages(app.admin, "/v1/api-keys"))

    # The other tenant is untouched.
    kept_client = app.client(kept_key["key"])
    assert ids_of(all_pages(kept_client, "/v1/subscriptions")) == {s_kept["id"]}
    assert app.admin.get(f"/v1/tenants/{kept}").status_code == 200
    assert [d["status"] for d in all_pages(kept_client, "/v1/deliveries")] == ["succeeded"]

    # The same id again is a new, empty tenant; the old key stays dead.
    again = app.admin.put(f"/v1/tenants/{doomed}", json={})
    assert again.status_code == 201, again.text
    assert again.json()["name"] is None and again.json()["created_at"] > first_made
    assert all_pages(app.admin, "/v1/subscriptions", tenant_id=doomed) == []
    assert all_pages(app.admin, "/v1/api-keys", tenant_id=doomed) == []
    assert_error(app.client(doomed_key["key"]).get("/v1/subscriptions"), 401, "unauthorized")


# ---- bad input --------------------------------------------------------------------------------

OVER_16K = {"blob": "x" * (16 * 1024)}
AT_16K = {"b": "x" * (16 * 1024 - len('{"b":""}'))}
BAD_IDS = {
    "too-long": "a" * 65,
    "leading-dash": "-abc",
    "leading-dot": ".abc",
    "percent": "a%25b",
    "space": "a%20b",
    "unicode": "caf%C3%A9",
    "plus-sign": "a+b",
}
BAD_BODY_IDS = ["-abc", "a" * 65, "a b", "a/b", "café", "", 7, ["a"], {"a": 1}]


def counts(app: App) -> dict[str, int]:
    return {path: len(all_pages(app.admin, path))
            for path in ("/v1/tenants", "/v1/api-keys", "/v1/subscriptions", "/v1/events")}


def bad_cases() -> list[tuple[str, str, str, Any, int, str]]:
    """(name, method, path, body, status, code); ``{t}`` is a tenant that exists."""
    cases: list[tuple[str, str, str, Any, int, str]] = []
    for name, raw in BAD_IDS.items():
        cases.append((f"put-{name}", "PUT", f"/v1/tenants/{raw}", {"name": "x"}, 422,
                      "invalid_tenant_id"))
    url = "https://hooks.example.com/bad"
    for n, value in enumerate(BAD_BODY_IDS):
        cases += [
            (f"event-tenant-{n}", "POST", "/v1/events", {"type": "bad.x", "tenant_id": value},
             422, "validation_error"),
            (f"key-tenant-{n}", "POST", "/v1/api-keys",
             {"role": "subscriber", "name": "bad", "tenant_id": value}, 422, "validation_error"),
            (f"sub-tenant-{n}", "POST", "/v1/subscriptions", {"url": url, "tenant_id": value},
             422, "validation_error"),
            (f"replay-tenant-{n}", "POST", "/v1/deliveries/replay", {"tenant_id": value},
             422, "validation_error"),
        ]
    for path in ("/v1/events", "/v1/deliveries", "/v1/subscriptions", "/v1/api-keys"):
        for n, value in enumerate(["-abc", "a" * 65, "a%20b", "caf%C3%A9", "", "a" * 201]):
            cases.append((f"query-{path[4:]}-{n}", "GET", f"{path}?tenant_id={value}", None,
                          400, "invalid_parameter"))
    cases += [
        # A '/' ends the path segment: no route takes it (it can name no tenant either).
        ("put-slash-encoded", "PUT", "/v1/tenants/a%2Fb", {"name": "x"}, 404, "not_found"),
        ("put-slash", "PUT", "/v1/tenants/a/b", {"name": "x"}, 404, "not_found"),
        ("event-tenant-and-broadcast", "POST", "/v1/events",
         {"type": "bad.x", "tenant_id": "{t}", "broadcast": True}, 422, "validation_error"),
        ("event-broadcast-not-bool", "POST", "/v1/events",
         {"type": "bad.x", "broadcast": "maybe"}, 422, "validation_error"),
        ("metadata-over-16k", "PUT", "/v1/tenants/{t}", {"metadata": OVER_16K}, 422,
         "validation_error"),
        ("metadata-list", "PUT", "/v1/tenants/{t}", {"metadata": ["a"]}, 422,
         "validation_error"),
        ("metadata-string", "PUT", "/v1/tenants/{t}", {"metadata": "plan=pro"}, 422,
         "validation_error"),
        ("metadata-null", "PUT", "/v1/tenants/{t}", {"metadata": None}, 422,
         "validation_error"),
        ("name-over-200", "PUT", "/v1/tenants/{t}", {"name": "n" * 201}, 422,
         "validation_error"),
        ("name-not-text", "PUT", "/v1/tenants/{t}", {"name": 5}, 422, "validation_error"),
        ("tenant-unknown-field", "PUT", "/v1/tenants/{t}", {"plan": "pro"}, 422,
         "validation_error"),
        ("tenant-body-not-object", "PUT", "/v1/tenants/{t}", ["x"], 422, "validation_error"),
        ("key-unknown-tenant", "POST", "/v1/api-keys",
         {"role": "subscriber", "name": "bad", "tenant_id": "nobody-here"}, 404,
         "tenant_not_found"),
        ("key-publisher-tenant", "POST", "/v1/api-keys",
         {"role": "publisher", "name": "bad", "tenant_id": "{t}"}, 422, "validation_error"),
        ("sub-unknown-tenant", "POST", "/v1/subscriptions",
         {"url": url, "tenant_id": "nobody-here"}, 404, "tenant_not_found"),
        ("get-unknown-tenant", "GET", "/v1/tenants/nobody-here", None, 404,
         "tenant_not_found"),
        ("tenants-bad-cursor", "GET", "/v1/tenants?cursor=-x", None, 400, "invalid_cursor"),
        ("tenants-bad-limit", "GET", "/v1/tenants?limit=0", None, 400, "invalid_parameter"),
        ("tenants-bad-order", "GET", "/v1/tenants?order=up", None, 400, "invalid_parameter"),
    ]
    return cases


BAD = bad_cases()


@pytest.fixture(scope="module")
def existing(app: App) -> str:
    tenant_id = put_tenant(app, "bad-input", name="Kept", metadata={"plan": "pro"})
    return tenant_id


@pytest.mark.parametrize(("name", "method", "path", "body", "status", "code"), BAD,
                         ids=[c[0] for c in BAD])
def test_bad_input(app, existing, name, method, path, body, status, code):
    before = counts(app)
    tenant = app.admin.get(f"/v1/tenants/{existing}").json()
    path = path.replace("{t}", existing)
    if isinstance(body, dict):
        body = {k: (existing if v == "{t}" else v) for k, v in body.items()}
    response = app.admin.request(method, path, json=body)
    assert_error(response, status, code)
    assert counts(app) == before, "something was written"
    assert app.admin.get(f"/v1/tenants/{existing}").json() == tenant


def test_bad_input_boundaries_are_accepted(app):
    """The limits are where they say: 64 characters, 200 for a name, 16 KiB of metadata."""
    longest = "A" + "b_.:-9" * 10 + "xyz"
    assert len(longest) == 64
    made = app.admin.put(f"/v1/tenants/{longest}", json={"name": "n" * 200, "metadata": AT_16K})
    assert made.status_code == 201, made.text
    assert made.json()["metadata"] == AT_16K and len(made.json()["name"]) == 200
    one = app.admin.put(f"/v1/tenants/{uid()[0]}")
    assert one.status_code in (200, 201), one.text
    assert app.admin.get("/v1/events", params={"tenant_id": longest}).status_code == 200


def test_tenant_ids_are_case_sensitive(app):
    low = f"case-{uid()}"
    high = low.upper()
    assert app.admin.put(f"/v1/tenants/{low}", json={"name": "low"}).status_code == 201
    made = app.admin.put(f"/v1/tenants/{high}", json={"name": "high"})
    assert made.status_code == 201, made.text
    assert app.admin.get(f"/v1/tenants/{low}").json()["name"] == "low"
    assert app.admin.get(f"/v1/tenants/{high}").json()["name"] == "high"
    key = make_key(app, low)
    assert_error(app.client(key["key"]).get(f"/v1/tenants/{high}"), 404, "tenant_not_found")


def test_metadata_limit_counts_bytes_not_characters(app):
    tenant_id = put_tenant(app, "bytes")
    wide = {"b": "é" * 9000}  # 9,000 characters, 18,000 bytes of UTF-8
    assert_error(app.admin.put(f"/v1/tenants/{tenant_id}", json={"metadata": wide}),
                 422, "validation_error")
    kept = {"b": "é" * 8000, "n": [1, 2.5, None, True], "deep": {"x": {"y": "z"}}}
    put = app.admin.put(f"/v1/tenants/{tenant_id}", json={"metadata": kept})
    assert put.status_code == 200 and put.json()["metadata"] == kept, put.text
    assert app.admin.get(f"/v1/tenants/{tenant_id}").json()["metadata"] == kept


def test_paging_goes_on_when_the_cursors_tenant_is_deleted(app):
    prefix = f"cursor-{uid()}"
    mine = [f"{prefix}-{n}" for n in range(3)]
    for tenant_id in mine:
        assert app.admin.put(f"/v1/tenants/{tenant_id}").status_code == 201
    first = app.admin.get("/v1/tenants", params={"limit": 1}).json()
    assert [t["id"] for t in first["data"]] == [mine[-1]]
    assert app.admin.delete(f"/v1/tenants/{mine[-1]}").status_code == 204
    rest = app.admin.get("/v1/tenants", params={"limit": 2, "cursor": first["next_cursor"]})
    assert rest.status_code == 200, rest.text
    assert [t["id"] for t in rest.json()["data"]] == [mine[1], mine[0]], rest.text
