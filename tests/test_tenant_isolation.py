"""One tenant never sees another's data: the role matrix of the Tenants section.

One server and one seeded world for the module (nothing here changes it: every call that
could is refused). Tenant A has a scoped subscriber key; tenant B has two scoped keys,
subscriptions (one made by the admin, one by B's key, failing), events (the admin's and a
publisher's), deliveries (succeeded and failed) and their attempts; there are tenant-less
subscriptions (one of an unscoped subscriber key) and a broadcast that reached everyone.

``test_a_scoped_key_against_every_operation`` takes the operations from ``/openapi.json``,
so a new endpoint fails it until its row in ``EXPECTED`` says what A's key gets there.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from dispatcher import ids
from dispatcher.config import Settings

from .conftest import ADMIN_TOKEN, TEST_SETTINGS
from .databases import Databases
from .harness import AppServer, Receiver, Reply, poll

NOT_PLAIN = ("Input should", "pydantic", "Value error", "Traceback")


@dataclass
class World:
    server: AppServer
    admin: httpx.Client
    a: str
    b: str
    keys: dict[str, dict[str, Any]]  # "a", "b", "b2", "u" (unscoped), "pub"
    subs: dict[str, dict[str, Any]]  # "a1", "b1" (admin's), "b2" (B's key's), "u1", "n1"
    events: dict[str, dict[str, Any]]  # "a", "b", "pub_b", "n", "x" (broadcast)
    deliveries: dict[tuple[str, str], dict[str, Any]]  # (sub, event) -> delivery
    attempts: dict[str, list[dict[str, Any]]]  # delivery id -> its attempts
    receivers: dict[str, Receiver]  # "a", "b_ok", "b_bad", "n"
    b_values: dict[str, str] = field(default_factory=dict)  # B's text -> a lookalike
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, who: str) -> httpx.Client:
        key = ADMIN_TOKEN if who == "admin" else self.keys[who]["key"]
        made = httpx.Client(base_url=self.server.url, timeout=30,
                            headers={"authorization": f"Bearer {key}"})
        self.clients.append(made)
        return made

    def delivery(self, sub: str, event: str) -> str:
        return str(self.deliveries[(sub, event)]["id"])


def lookalike(value: str) -> str:
    """Text of the same kind as ``value`` that names nothing."""
    prefix, _, rest = value.partition("_")
    if rest and len(rest) == 26:
        return ids.new_id(prefix)
    return "iso-z" + secrets.token_hex(len(value))[: max(len(value) - 5, 1)]


@pytest.fixture(scope="module")
def world(databases: Databases) -> Iterator[World]:
    settings = Settings(**{**TEST_SETTINGS, "database_url": databases.new()})
    tag, marker = secrets.token_hex(3), f"hdr-{secrets.token_hex(6)}"
    with (
        Receiver() as ra, Receiver() as rb_ok, Receiver(lambda n, r: Reply(400)) as rb_bad,
        Receiver() as rn, AppServer(settings) as server,
        httpx.Client(base_url=server.url, timeout=30,
                     headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as admin,
    ):
        a, b = f"iso-a-{tag}", f"iso-b-{tag}"
        for tenant_id in (a, b):
            made = admin.put(f"/v1/tenants/{tenant_id}",
                             json={"name": f"Tenant {tenant_id}", "metadata": {"t": tenant_id}})
            assert made.status_code == 201, made.text

        keys = {}
        for name, role, tenant_id in (("a", "subscriber", a), ("b", "subscriber", b),
                                      ("b2", "subscriber", b), ("u", "subscriber", None),
                                      ("pub", "publisher", None)):
            body = {"role": role, "name": f"iso-{name}"} | (
                {"tenant_id": tenant_id} if tenant_id else {})
            made = admin.post("/v1/api-keys", json=body)
            assert made.status_code == 201, made.text
            keys[name] = made.json()

        def as_key(name: str) -> httpx.Client:
            return httpx.Client(base_url=server.url, timeout=30,
                                headers={"authorization": f"Bearer {keys[name]['key']}"})

        subs: dict[str, dict[str, Any]] = {}

        def subscribe(name: str, client: httpx.Client, url: str, **fields: Any) -> None:
            made = client.post("/v1/subscriptions", json={
                "url": url, "event_types": ["iso.*"], "description": f"iso {name}", **fields})
            assert made.status_code == 201, made.text
            subs[name] = made.json()

        with as_key("a") as ka, as_key("b") as kb, as_key("u") as ku, as_key("pub") as kp:
            subscribe("a1", ka, ra.url)
            subscribe("b1", admin, rb_ok.url, tenant_id=b, headers={"X-B-Header": marker})
            subscribe("b2", kb, rb_bad.url)
            subscribe("u1", ku, rn.url)
            subscribe("n1", admin, rn.url)
            assert [subs[n]["tenant_id"] for n in ("a1", "b1", "b2", "u1", "n1")] == [
                a, b, b, None, None]

            events = {}
            for name, client, body, count in (
                ("a", admin, {"tenant_id": a, "data": {"for": "a"}}, 1),
                ("b", admin, {"tenant_id": b, "data": {"secret": f"b-data-{tag}"}}, 2),
                ("pub_b", kp, {"tenant_id": b, "data": {"secret": f"b-pub-{tag}"}}, 2),
                ("n", admin, {"data": {"for": "none"}}, 2),
                ("x", admin, {"broadcast": True, "data": {"for": "all"}}, 5),
            ):
                accepted = client.post("/v1/events", json={"type": f"iso.{name}", **body})
                assert accepted.status_code == 202, accepted.text
                assert accepted.json()["deliveries"] == count, (name, accepted.text)
                events[name] = accepted.json()

        by_sub = {s["id"]: n for n, s in subs.items()}
        by_event = {e["id"]: n for n, e in events.items()}

        def all_settled() -> list[dict[str, Any]] | None:
            rows = admin.get("/v1/deliveries", params={"limit": 500}).json()["data"]
            done = len(rows) == 12 and all(r["status"] in ("succeeded", "failed") for r in rows)
            return rows if done else None

        rows = poll(all_settled, timeout=20, message="the world's 12 deliveries settled")
        deliveries = {(by_sub[r["subscription_id"]], by_event[r["event_id"]]): r for r in rows}
        assert {k: d["status"] for k, d in deliveries.items() if k[0] == "b2"} == {
            ("b2", "b"): "failed", ("b2", "pub_b"): "failed", ("b2", "x"): "failed"}
        attempts = {}
        for row in rows:
            got = admin.get(f"/v1/deliveries/{row['id']}/attempts")
            assert got.status_code == 200 and len(got.json()["data"]) == 1, got.text
            attempts[row["id"]] = got.json()["data"]

        world = World(server, admin, a, b, keys, subs, events, deliveries, attempts,
                      {"a": ra, "b_ok": rb_ok, "b_bad": rb_bad, "n": rn})
        b_texts = {b, keys["b"]["id"], keys["b"]["key"], keys["b2"]["id"], keys["b2"]["key"],
                   events["b"]["id"], events["pub_b"]["id"], f"b-data-{tag}", f"b-pub-{tag}",
                   f"Tenant {b}", marker, rb_ok.url, rb_bad.url}
        for name in ("b1", "b2"):
            b_texts |= {subs[name]["id"], subs[name]["secret"], subs[name]["url"]}
        for (sub, _), row in deliveries.items():
            if sub in ("b1", "b2"):
                b_texts.add(row["id"])
                b_texts |= {att["id"] for att in attempts[row["id"]]}
        world.b_values = {text: lookalike(text) for text in b_texts}
        yield world
        for client in world.clients:
            client.close()


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    what = f"{response.request.method} {response.request.url} -> {response.status_code} " \
           f"{response.text[:300]}"
    assert response.status_code == status, what
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, what
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], what
    for words in NOT_PLAIN:
        assert words not in response.text, what


def all_pages(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = {"limit": 500, **params} | ({"cursor": cursor} if cursor else {})
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        rows += response.json()["data"]
        cursor = response.json()["next_cursor"]
        if not cursor:
            return rows
    raise AssertionError("too many pages")


# ---- the matrix -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call of an operation: its query and body (``{name}`` fills from ``fill()``), and
    the answer A's key must get (200: a list holding only A's rows)."""

    status: int
    code: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None


DENIED = Call(403, "forbidden")
NO_SUCH = Call(404, "not_found")
NO_TENANT = Call(404, "tenant_not_found")
A_ONLY = 200

# What A's scoped subscriber key gets from every /v1 operation, called with B's ids.
EXPECTED: dict[tuple[str, str], list[Call]] = {
    ("POST", "/v1/events"): [Call(403, "forbidden", body={"type": "iso.b", "tenant_id": "{B}"}),
                             Call(403, "forbidden", body={"type": "iso.b", "broadcast": True})],
    ("GET", "/v1/events"): [Call(403, "forbidden", query={"tenant_id": "{B}"}),
                            Call(403, "forbidden", query={"cursor": "{event_id}"})],
    ("GET", "/v1/events/{event_id}"): [DENIED],
    ("GET", "/v1/events/{event_id}/deliveries"): [DENIED],
    ("POST", "/v1/events/{event_id}/replay"): [
        DENIED, Call(403, "forbidden", body={"subscription_ids": ["{sub_id}"]})],
    ("POST", "/v1/api-keys"): [Call(403, "forbidden", body={
        "role": "subscriber", "name": "iso-escalate", "tenant_id": "{B}"})],
    ("GET", "/v1/api-keys"): [Call(403, "forbidden", query={"tenant_id": "{B}"})],
    ("DELETE", "/v1/api-keys/{key_id}"): [DENIED],
    ("POST", "/v1/subscriptions"): [Call(404, "tenant_not_found", body={
        "url": "{A_URL}", "event_types": ["iso.*"], "tenant_id": "{B}"})],
    # Reads no rows: nothing of B's to tell, whatever the filter names.
    ("POST", "/v1/subscriptions/filter-test"): [Call(422, "invalid_filter", body={
        "filter": {"tenant_id": "{B}", "data.x": {"$bad": 1}}, "event": {"type": "iso.b"}})],
    ("GET", "/v1/subscriptions"): [Call(404, "tenant_not_found", query={"tenant_id": "{B}"}),
                                   Call(A_ONLY, query={"cursor": "{sub_id}"})],
    ("GET", "/v1/subscriptions/{sub_id}"): [NO_SUCH],
    ("PATCH", "/v1/subscriptions/{sub_id}"): [
        Call(404, "not_found", body={"description": "pwned", "enabled": False}),
        Call(404, "not_found", body={"url": "{A_URL}"}),
        Call(404, "not_found", body={"tenant_id": "{B}"})],
    ("DELETE", "/v1/subscriptions/{sub_id}"): [NO_SUCH],
    ("POST", "/v1/subscriptions/{sub_id}/rotate-secret"): [Call(404, "not_found", body={})],
    ("POST", "/v1/subscriptions/{sub_id}/recover"): [
        Call(403, "forbidden", body={"since": "2020-01-01T00:00:00Z"})],
    ("POST", "/v1/subscriptions/{sub_id}/test"): [Call(404, "not_found", body={})],
    ("GET", "/v1/deliveries"): [
        Call(404, "tenant_not_found", query={"tenant_id": "{B}"}),
        Call(A_ONLY, query={"subscription_id": "{sub_id}"}),
        Call(A_ONLY, query={"cursor": "{delivery_id}"}),
        Call(A_ONLY, query={"event_type": "iso.b"})],
    ("POST", "/v1/deliveries/replay"): [Call(403, "forbidden", body={"tenant_id": "{B}"}),
                                        Call(403, "forbidden", body={
                                            "subscription_id": "{sub_id}"})],
    ("GET", "/v1/deliveries/{delivery_id}"): [NO_SUCH],
    ("GET", "/v1/deliveries/{delivery_id}/attempts"): [
        NO_SUCH, Call(404, "not_found", query={"cursor": "{attempt_id}"})],
    ("POST", "/v1/deliveries/{delivery_id}/retry"): [NO_SUCH],
    ("PUT", "/v1/tenants/{tenant_id}"): [Call(403, "forbidden", body={"name": "pwned"})],
    ("GET", "/v1/tenants/{tenant_id}"): [NO_TENANT],
    ("DELETE", "/v1/tenants/{tenant_id}"): [DENIED],
    ("GET", "/v1/tenants"): [Call(403, "forbidden", query={"cursor": "{B}"})],
    ("POST", "/v1/tenants/{tenant_id}/portal-links"): [
        Call(403, "forbidden", body={}), Call(403, "forbidden", body={"read_only": True})],
    ("POST", "/v1/tenants/{tenant_id}/portal-links/revoke"): [DENIED],
    # The catalog is one for all tenants (docs/api.md, "Event types"): readable, not writable.
    ("PUT", "/v1/event-types/{event_type}"): [Call(403, "forbidden", body={"description": "x"})],
    ("GET", "/v1/event-types"): [Call(A_ONLY)],
    ("GET", "/v1/event-types/{event_type}"): [NO_SUCH],
    ("DELETE", "/v1/event-types/{event_type}"): [DENIED],
}


def fills(world: World) -> list[dict[str, str]]:
    """B's ids by parameter name: two sets, so that each kind is tried twice (the admin's
    subscription and B's own, a failed delivery and one of the broadcast, …)."""
    first, second = world.delivery("b2", "b"), world.delivery("b1", "x")
    common = {"B": world.b, "tenant_id": world.b, "A_URL": world.receivers["a"].url,
              "event_type": "iso.b"}
    return [
        common | {"sub_id": world.subs["b1"]["id"], "delivery_id": first,
                  "event_id": world.events["b"]["id"], "key_id": world.keys["b"]["id"],
                  "attempt_id": world.attempts[first][0]["id"]},
        common | {"sub_id": world.subs["b2"]["id"], "delivery_id": second,
                  "event_id": world.events["pub_b"]["id"], "key_id": world.keys["b2"]["id"],
                  "attempt_id": world.attempts[second][0]["id"]},
    ]


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, text in names.items():
            value = value.replace("{" + name + "}", text)
        return value
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def longest_first(table: dict[str, str]) -> list[tuple[str, str]]:
    """So that a text inside a longer one (B's id in B's name) is not replaced first."""
    return sorted(table.items(), key=lambda item: -len(item[0]))


def swap(value: Any, table: dict[str, str]) -> Any:
    """``value`` (a filled path, query or body) with every text of ``table`` replaced."""
    text = json.dumps(value)
    for old, new in longest_first(table):
        text = text.replace(old, new)
    return json.loads(text)


def api_operations(world: World) -> list[tuple[str, str]]:
    spec = httpx.get(world.server.url + "/openapi.json", timeout=30)
    assert spec.status_code == 200, spec.text
    return sorted((method.upper(), path) for path, ops in spec.json()["paths"].items()
                  for method in ops if path.startswith("/v1/"))


def a_rows(world: World) -> dict[str, set[str]]:
    """Everything A's key may see in a list."""
    return {
        "/v1/subscriptions": {world.subs["a1"]["id"]},
        "/v1/deliveries": {world.delivery("a1", "a"), world.delivery("a1", "x")},
        "/v1/event-types": set(),  # the world has no catalog
    }


def check_call(world: World, client: httpx.Client, method: str, template: str,
               call: Call, names: dict[str, str]) -> None:
    path = fill(template, names)
    query = fill(call.query, names)
    body = fill(call.body, names)
    response = client.request(method, path, params=query, json=body)
    what = f"{method} {path} {query} {body} -> {response.status_code} {response.text[:300]}"
    assert response.status_code == call.status, what
    assert response.status_code != 500 and "Traceback" not in response.text, what
    sent = json.dumps([path, query, body])
    echoed = {text: look for text, look in world.b_values.items() if text in response.text}
    assert set(echoed) <= {t for t in echoed if t in sent}, f"B's data in {what}"
    if call.status == A_ONLY:
        assert not echoed, what
        rows = response.json()["data"]
        allowed = a_rows(world)[template]
        assert {r["id"] for r in rows} <= allowed, what
        assert all(r["tenant_id"] == world.a for r in rows), what
        return
    assert_error(response, call.status, call.code or "")
    # What it says of B's id is what it says of an id that names nothing: no oracle.
    table = {text: look for text, look in world.b_values.items() if text in sent}
    twin = client.request(method, swap(path, table), params=swap(query, table),
                          json=swap(body, table))
    back = twin.text
    for text, look in longest_first(table):
        back = back.replace(look, text)
    assert (twin.status_code, back) == (response.status_code, response.text), (
        f"{what} but for an unknown id: {twin.status_code} {twin.text[:300]}")


def test_a_scoped_key_against_every_operation(world):
    operations = api_operations(world)
    assert set(EXPECTED) == set(operations), (
        "operations without a row in EXPECTED (or rows without an operation): "
        f"{set(operations) ^ set(EXPECTED)}")
    client = world.client("a")
    called: list[tuple[str, str]] = []
    for method, template in operations:
        templates_fills = fills(world) if "{" in template else fills(world)[:1]
        for names in templates_fills:
            for call in EXPECTED[(method, template)]:
                check_call(world, client, method, template, call, names)
                called.append((method, template))
    assert set(called) == set(operations)
    assert len(set(called)) >= 25, len(set(called))
    expected_calls = sum(len(EXPECTED[op]) * (2 if "{" in op[1] else 1) for op in operations)
    assert len(called) == expected_calls


def test_the_matrix_changed_nothing_of_bs(world):
    """Runs after the matrix (file order): every refused call left B as it was."""
    b_key = world.client("b")
    for name in ("b1", "b2"):
        got = b_key.get(f"/v1/subscriptions/{world.subs[name]['id']}")
        assert got.status_code == 200, got.text
        sub = got.json()
        original = world.subs[name]
        for kept in ("url", "secret", "description", "enabled", "tenant_id", "headers"):
            assert sub[kept] == original[kept], kept
    for (sub, _), row in world.deliveries.items():
        now = world.admin.get(f"/v1/deliveries/{row['id']}").json()
        assert (now["status"], now["attempts"]) == (row["status"], row["attempts"]), sub
    assert world.admin.get(f"/v1/tenants/{world.b}").json()["name"] == f"Tenant {world.b}"
    keys = {k["id"] for k in all_pages(world.admin, "/v1/api-keys", tenant_id=world.b)}
    assert keys == {world.keys["b"]["id"], world.keys["b2"]["id"]}
    assert "iso-escalate" not in {k["name"] for k in all_pages(world.admin, "/v1/api-keys")}
    assert {s["id"] for s in all_pages(world.admin, "/v1/subscriptions")} == {
        s["id"] for s in world.subs.values()}
    # Beside the world's events, only dispatcher's own about its failing receivers.
    published = [e for e in all_pages(world.admin, "/v1/events")
                 if not e["type"].startswith("dispatcher.")]
    assert len(published) == len(world.events)
    # The refused test sends reached no receiver of B's.
    assert world.receivers["b_ok"].count() == 3 and world.receivers["b_bad"].count() == 3


# ---- lists and reads by role ------------------------------------------------------------------


def test_a_scoped_key_sees_its_own_tenant_only(world):
    client = world.client("a")
    assert {s["id"] for s in all_pages(client, "/v1/subscriptions")} == {world.subs["a1"]["id"]}
    assert {s["id"] for s in all_pages(client, "/v1/subscriptions", tenant_id=world.a)} == {
        world.subs["a1"]["id"]}
    listed = all_pages(client, "/v1/deliveries")
    assert {d["id"] for d in listed} == a_rows(world)["/v1/deliveries"]
    assert {d["tenant_id"] for d in listed} == {world.a}
    assert {d["id"] for d in all_pages(client, "/v1/deliveries", tenant_id=world.a)} == {
        d["id"] for d in listed}
    for status in ("succeeded", "failed"):
        rows = all_pages(client, "/v1/deliveries", status=status)
        assert {d["id"] for d in rows} <= a_rows(world)["/v1/deliveries"]
    # The broadcast's delivery to A is A's, and readable with its attempts.
    mine = world.delivery("a1", "x")
    assert client.get(f"/v1/deliveries/{mine}").status_code == 200
    attempts = client.get(f"/v1/deliveries/{mine}/attempts")
    assert attempts.status_code == 200 and len(attempts.json()["data"]) == 1
    tenant = client.get(f"/v1/tenants/{world.a}")
    assert tenant.status_code == 200 and tenant.json()["metadata"] == {"t": world.a}
    for text in world.b_values:
        for response in (tenant, attempts):
            assert text not in response.text


def test_bs_key_sees_b_so_the_404s_mean_something(world):
    client = world.client("b2")
    assert {s["id"] for s in all_pages(client, "/v1/subscriptions")} == {
        world.subs["b1"]["id"], world.subs["b2"]["id"]}
    b_deliveries = {d["id"] for d in all_pages(client, "/v1/deliveries")}
    assert b_deliveries == {row["id"] for (sub, _), row in world.deliveries.items()
                            if sub in ("b1", "b2")}
    assert client.get(f"/v1/tenants/{world.b}").status_code == 200
    assert_error(client.get(f"/v1/tenants/{world.a}"), 404, "tenant_not_found")
    assert_error(client.get(f"/v1/subscriptions/{world.subs['a1']['id']}"), 404, "not_found")


def test_an_unscoped_subscriber_sees_no_tenants_subscriptions(world):
    client = world.client("u")
    assert {s["id"] for s in all_pages(client, "/v1/subscriptions")} == {world.subs["u1"]["id"]}
    listed = all_pages(client, "/v1/deliveries")
    assert {d["id"] for d in listed} == {world.delivery("u1", "x"), world.delivery("u1", "n")}
    assert {d["tenant_id"] for d in listed} == {None}
    for name in ("a1", "b1", "b2", "n1"):
        sub = world.subs[name]["id"]
        assert_error(client.get(f"/v1/subscriptions/{sub}"), 404, "not_found")
        assert_error(client.patch(f"/v1/subscriptions/{sub}", json={"description": "x"}),
                     404, "not_found")
        assert_error(client.post(f"/v1/subscriptions/{sub}/test", json={}), 404, "not_found")
        assert client.get("/v1/deliveries", params={"subscription_id": sub}).json()[
            "data"] == []
    for sub, event in (("a1", "a"), ("b1", "b"), ("b2", "x"), ("n1", "n")):
        delivery = world.delivery(sub, event)
        assert_error(client.get(f"/v1/deliveries/{delivery}"), 404, "not_found")
        assert_error(client.get(f"/v1/deliveries/{delivery}/attempts"), 404, "not_found")
        assert_error(client.post(f"/v1/deliveries/{delivery}/retry"), 404, "not_found")
    for tenant_id in (world.a, world.b):
        assert_error(client.get("/v1/subscriptions", params={"tenant_id": tenant_id}),
                     404, "tenant_not_found")
        assert_error(client.get("/v1/deliveries", params={"tenant_id": tenant_id}),
                     404, "tenant_not_found")
        assert_error(client.get(f"/v1/tenants/{tenant_id}"), 404, "tenant_not_found")
        assert_error(client.post("/v1/subscriptions", json={
            "url": world.receivers["n"].url, "tenant_id": tenant_id}), 404, "tenant_not_found")
    assert {s["id"] for s in all_pages(world.admin, "/v1/subscriptions")} == {
        s["id"] for s in world.subs.values()}


def test_a_scoped_key_sees_no_tenantless_subscriptions(world):
    client = world.client("a")
    for name in ("u1", "n1"):
        sub = world.subs[name]["id"]
        path = f"/v1/subscriptions/{sub}"
        assert_error(client.get(path), 404, "not_found")
        assert_error(client.patch(path, json={"enabled": False}), 404, "not_found")
        assert_error(client.post(f"{path}/rotate-secret", json={}), 404, "not_found")
        assert_error(client.post(f"{path}/test", json={}), 404, "not_found")
        assert_error(client.delete(path), 404, "not_found")
        assert client.get("/v1/deliveries", params={"subscription_id": sub}).json()[
            "data"] == []
    for sub, event in (("u1", "n"), ("n1", "x")):
        delivery = world.delivery(sub, event)
        assert_error(client.get(f"/v1/deliveries/{delivery}"), 404, "not_found")
        assert_error(client.post(f"/v1/deliveries/{delivery}/retry"), 404, "not_found")
    for name in ("u1", "n1"):
        got = world.admin.get(f"/v1/subscriptions/{world.subs[name]['id']}").json()
        assert got["enabled"] is True and got["secret"] == world.subs[name]["secret"]
