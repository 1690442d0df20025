"""The role matrix of docs/api.md: who may do what, and who sees what.

One server for the module. ``world`` sets up, as admin: a publisher key, two subscriber keys,
a subscription for each subscriber (and one for the admin), an admin event that fans out to
both subscribers' subscriptions (delivered to a real receiver) and a publisher event.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from dispatcher import ids
from dispatcher.config import Settings

from .conftest import ADMIN_TOKEN, TEST_SETTINGS
from .databases import Databases
from .harness import AppServer, Receiver, poll

FANOUT_TYPE = "roles.fanout"


@dataclass
class World:
    server: AppServer
    receiver: Receiver
    keys: dict[str, dict[str, Any]]  # "pub", "s1", "s2" -> the POST /v1/api-keys answer
    subs: dict[str, dict[str, Any]]  # "s1", "s2", "admin" -> the subscription
    admin_event: dict[str, Any]
    publisher_event: dict[str, Any]
    deliveries: dict[str, dict[str, Any]]  # "s1", "s2" -> its delivery of the admin event
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, who: str) -> httpx.Client:
        """A client for ``who``: "admin", "pub", "s1", "s2", or "none" for no key."""
        if who == "none":
            headers: dict[str, str] = {}
        else:
            key = ADMIN_TOKEN if who == "admin" else self.keys[who]["key"]
            headers = {"authorization": f"Bearer {key}"}
        client = httpx.Client(base_url=self.server.url, headers=headers, timeout=30)
        self.clients.append(client)
        return client


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    request = response.request
    what = f"{request.method} {request.url} -> {response.status_code} {response.text[:300]}"
    assert response.status_code == status, what
    assert "Traceback" not in response.text, what
    body = response.json()
    assert set(body) == {"error"}, what
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], what
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], what
    if code is not None:
        assert body["error"]["code"] == code, what


def all_pages(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 500, **params} | ({"cursor": cursor} if cursor else {})
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        rows += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return rows


@pytest.fixture(scope="module")
def world(databases: Databases) -> Iterator[World]:
    settings = Settings(**{**TEST_SETTINGS, "database_url": databases.new()})
    with (
        Receiver() as receiver,
        AppServer(settings) as server,
        httpx.Client(
            base_url=server.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin,
    ):
        keys = {}
        for name, role in (("pub", "publisher"), ("s1", "subscriber"), ("s2", "subscriber")):
            made = admin.post("/v1/api-keys", json={"role": role, "name": f"roles-{name}"})
            assert made.status_code == 201, made.text
            keys[name] = made.json()

        subs = {}
        for name in ("s1", "s2"):
            with httpx.Client(
                base_url=server.url,
                timeout=30,
                headers={"authorization": f"Bearer {keys[name]['key']}"},
            ) as c:
                made = c.post(
                    "/v1/subscriptions",
                    json={
                        "url": receiver.url,
                        "event_types": ["roles.*"],
                        "description": f"owned by {name}",
                    },
                )
                assert made.status_code == 201, made.text
                subs[name] = made.json()
        made = admin.post(
            "/v1/subscriptions", json={"url": receiver.url, "event_types": ["admin.only"]}
        )
        assert made.status_code == 201, made.text
        subs["admin"] = made.json()

        accepted = admin.post("/v1/events", json={"type": FANOUT_TYPE, "data": {"by": "admin"}})
        assert accepted.status_code == 202, accepted.text
        admin_event = accepted.json()
        assert admin_event["deliveries"] == 2

        with httpx.Client(
            base_url=server.url,
            timeout=30,
            headers={"authorization": f"Bearer {keys['pub']['key']}"},
        ) as c:
            accepted = c.post("/v1/events", json={"type": "pub.thing", "data": {"by": "pub"}})
            assert accepted.status_code == 202, accepted.text
            publisher_event = accepted.json()
            assert publisher_event["deliveries"] == 0

        def delivered() -> list[dict[str, Any]] | None:
            rows = admin.get(f"/v1/events/{admin_event['id']}/deliveries").json()["data"]
            done = len(rows) == 2 and all(r["status"] == "succeeded" for r in rows)
            return rows if done else None

        rows = poll(delivered, timeout=10, message="both deliveries succeeded")
        by_sub = {r["subscription_id"]: r for r in rows}
        deliveries = {name: by_sub[subs[name]["id"]] for name in ("s1", "s2")}
        assert receiver.count() == 2

        world = World(server, receiver, keys, subs, admin_event, publisher_event, deliveries)
        yield world
        for client in world.clients:
            client.close()


# ---- authentication ---------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/v1/events", None),
    ("POST", "/v1/events", {"type": "a"}),
    ("GET", "/v1/subscriptions", None),
    ("POST", "/v1/subscriptions", {"url": "https://hooks.example.com/in"}),
    ("GET", "/v1/deliveries", None),
    ("GET", "/v1/api-keys", None),
    ("POST", "/v1/api-keys", {"role": "admin", "name": "x"}),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS]
)
def test_no_authorization_header_is_401(world, method, path, body):
    response = world.client("none").request(method, path, json=body)
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong",
        f"Bearer {ADMIN_TOKEN} extra",
        "Bearer",
        f"Bearer {ADMIN_TOKEN}x",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        "Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode(),
        f"Basic {ADMIN_TOKEN}",
        f"Token {ADMIN_TOKEN}",
        ADMIN_TOKEN,
        "",
    ],
    ids=[
        "wrong",
        "two-words",
        "bare-scheme",
        "suffix",
        "prefix",
        "basic-userpass",
        "basic-token",
        "token-scheme",
        "no-scheme",
        "empty",
    ],
)
@pytest.mark.parametrize(
    ("method", "path", "body"), ENDPOINTS[:3], ids=[f"{m} {p}" for m, p, _ in ENDPOINTS[:3]]
)
def test_bad_authorization_is_401(world, header, method, path, body):
    with httpx.Client(base_url=world.server.url, timeout=30) as client:
        response = client.request(method, path, json=body, headers={"authorization": header})
    assert_error(response, 401, "unauthorized")


def test_bearer_scheme_is_case_insensitive(world):
    with httpx.Client(base_url=world.server.url, timeout=30) as client:
        response = client.get("/v1/api-keys", headers={"authorization": f"bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200, response.text


def test_public_endpoints_need_no_key(world):
    client = world.client("none")
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("role", ["publisher", "subscriber", "admin"])
def test_deleted_key_answers_401_at_once(world, role):
    admin = world.client("admin")
    made = admin.post("/v1/api-keys", json={"role": role, "name": f"doomed-{role}"})
    assert made.status_code == 201, made.text
    key = made.json()
    probe = {"publisher": "/v1/events", "subscriber": "/v1/subscriptions", "admin": "/v1/api-keys"}[
        role
    ]
    # One client, one kept-alive connection: nothing about the key may be cached on it.
    with httpx.Client(
        base_url=world.server.url, timeout=30, headers={"authorization": f"Bearer {key['key']}"}
    ) as doomed:
        assert doomed.get(probe).status_code == 200
        deleted = admin.delete(f"/v1/api-keys/{key['id']}")
        assert deleted.status_code == 204, deleted.text
        assert deleted.content == b""
        assert_error(doomed.get(probe), 401, "unauthorized")
        assert_error(doomed.post("/v1/events", json={"type": "a"}), 401, "unauthorized")
    assert_error(admin.delete(f"/v1/api-keys/{key['id']}"), 404, "not_found")
    listed = [k["id"] for k in all_pages(admin, "/v1/api-keys")]
    assert key["id"] not in listed


# ---- publisher --------------------------------------------------------------------------------


def test_publisher_may_post_events(world):
    pub = world.client("pub")
    response = pub.post("/v1/events", json={"type": "pub.more", "data": {"n": 1}})
    assert response.status_code == 202, response.text
    assert response.json()["id"].startswith("evt_")


def test_publisher_lists_only_its_own_events(world):
    pub = world.client("pub")
    listed = all_pages(pub, "/v1/events")
    ids_seen = {e["id"] for e in listed}
    assert world.publisher_event["id"] in ids_seen
    assert world.admin_event["id"] not in ids_seen
    assert all(e["type"].startswith("pub.") for e in listed), listed
    # Filtering by the admin event's type does not reveal it either.
    assert pub.get("/v1/events", params={"type": FANOUT_TYPE}).json()["data"] == []
    # The admin sees both.
    admin_ids = {e["id"] for e in all_pages(world.client("admin"), "/v1/events")}
    assert {world.admin_event["id"], world.publisher_event["id"]} <= admin_ids


def test_publisher_reads_its_own_event_not_the_admins(world):
    pub = world.client("pub")
    own = pub.get(f"/v1/events/{world.publisher_event['id']}")
    assert own.status_code == 200, own.text
    assert own.json()["data"] == {"by": "pub"}
    assert_error(pub.get(f"/v1/events/{world.admin_event['id']}"), 404, "not_found")
    assert_error(pub.get(f"/v1/events/{world.admin_event['id']}/deliveries"), 404, "not_found")


PUBLISHER_FORBIDDEN = [
    ("POST", "/v1/subscriptions", {"url": "https://hooks.example.com/in"}),
    ("GET", "/v1/subscriptions", None),
    ("GET", "/v1/subscriptions/{s1_sub}", None),
    ("PATCH", "/v1/subscriptions/{s1_sub}", {"description": "pwned"}),
    ("DELETE", "/v1/subscriptions/{s1_sub}", None),
    ("POST", "/v1/subscriptions/{s1_sub}/rotate-secret", {}),
    ("POST", "/v1/subscriptions/{s1_sub}/test", {}),
    ("GET", "/v1/deliveries", None),
    ("GET", "/v1/deliveries/{s1_dlv}", None),
    ("GET", "/v1/deliveries/{s1_dlv}/attempts", None),
    ("POST", "/v1/deliveries/{s1_dlv}/retry", None),
    ("POST", "/v1/api-keys", {"role": "admin", "name": "escalate"}),
    ("GET", "/v1/api-keys", None),
    ("DELETE", "/v1/api-keys/{s1_key}", None),
]


def _fill(world: World, template: str) -> str:
    return template.format(
        s1_sub=world.subs["s1"]["id"],
        s1_dlv=world.deliveries["s1"]["id"],
        s1_key=world.keys["s1"]["id"],
        admin_evt=world.admin_event["id"],
        pub_evt=world.publisher_event["id"],
        pub_key=world.keys["pub"]["id"],
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    PUBLISHER_FORBIDDEN,
    ids=[f"{m} {p}" for m, p, _ in PUBLISHER_FORBIDDEN],
)
def test_publisher_may_not_touch_subscriptions_deliveries_or_keys(world, method, path, body):
    response = world.client("pub").request(method, _fill(world, path), json=body)
    assert_error(response, 403, "forbidden")


def test_publisher_forbidden_calls_changed_nothing(world):
    admin = world.client("admin")
    sub = admin.get(f"/v1/subscriptions/{world.subs['s1']['id']}")
    assert sub.status_code == 200, sub.text
    assert sub.json()["description"] == "owned by s1"
    assert sub.json()["secret"] == world.subs["s1"]["secret"]
    names = {k["name"] for k in all_pages(admin, "/v1/api-keys")}
    assert "escalate" not in names
    assert {"roles-pub", "roles-s1", "roles-s2"} <= names


# ---- subscribers ------------------------------------------------------------------------------


def test_subscriber_may_create_subscriptions(world):
    s2 = world.client("s2")
    response = s2.post(
        "/v1/subscriptions", json={"url": world.receiver.url, "event_types": ["never.sent"]}
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert s2.get(f"/v1/subscriptions/{made['id']}").status_code == 200
    assert s2.delete(f"/v1/subscriptions/{made['id']}").status_code == 204


@pytest.mark.parametrize(("me", "other"), [("s1", "s2"), ("s2", "s1")])
def test_subscriber_lists_only_its_own_subscriptions(world, me, other):
    listed = {s["id"] for s in all_pages(world.client(me), "/v1/subscriptions")}
    assert world.subs[me]["id"] in listed
    assert world.subs[other]["id"] not in listed
    assert world.subs["admin"]["id"] not in listed


@pytest.mark.parametrize(("me", "other"), [("s1", "s2"), ("s2", "s1"), ("s1", "admin")])
def test_subscriber_gets_404_for_anothers_subscription(world, me, other):
    client = world.client(me)
    path = f"/v1/subscriptions/{world.subs[other]['id']}"
    assert_error(client.get(path), 404, "not_found")
    assert_error(
        client.patch(path, json={"description": "pwned", "enabled": False}), 404, "not_found"
    )
    assert_error(client.post(f"{path}/rotate-secret", json={}), 404, "not_found")
    assert_error(client.post(f"{path}/test", json={}), 404, "not_found")
    assert_error(client.delete(path), 404, "not_found")
    # And none of that changed it.
    still = world.client("admin").get(path)
    assert still.status_code == 200, still.text
    assert still.json()["description"] == world.subs[other]["description"]
    assert still.json()["enabled"] is True
    assert still.json()["secret"] == world.subs[other]["secret"]


def test_subscriber_may_change_its_own_subscription(world):
    s1 = world.client("s1")
    path = f"/v1/subscriptions/{world.subs['s1']['id']}"
    changed = s1.patch(path, json={"description": "still owned by s1"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "still owned by s1"
    back = s1.patch(path, json={"description": world.subs["s1"]["description"]})
    assert back.status_code == 200, back.text


SUBSCRIBER_FORBIDDEN = [
    ("POST", "/v1/events", {"type": "roles.fanout"}),
    ("GET", "/v1/events", None),
    ("GET", "/v1/events/{admin_evt}", None),
    ("GET", "/v1/events/{pub_evt}", None),
    ("GET", "/v1/events/{admin_evt}/deliveries", None),
    ("GET", "/v1/api-keys", None),
    ("POST", "/v1/api-keys", {"role": "admin", "name": "escalate"}),
    ("DELETE", "/v1/api-keys/{pub_key}", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    SUBSCRIBER_FORBIDDEN,
    ids=[f"{m} {p}" for m, p, _ in SUBSCRIBER_FORBIDDEN],
)
@pytest.mark.parametrize("who", ["s1", "s2"])
def test_subscriber_may_not_publish_read_events_or_manage_keys(world, who, method, path, body):
    response = world.client(who).request(method, _fill(world, path), json=body)
    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize(("me", "other"), [("s1", "s2"), ("s2", "s1")])
def test_subscriber_sees_only_deliveries_of_its_own_subscriptions(world, me, other):
    client = world.client(me)
    listed = all_pages(client, "/v1/deliveries")
    seen = {d["id"] for d in listed}
    assert world.deliveries[me]["id"] in seen
    assert world.deliveries[other]["id"] not in seen
    assert {d["subscription_id"] for d in listed} <= {
        s["id"] for s in all_pages(client, "/v1/subscriptions")
    }
    # Filters do not open a way round it.
    by_other = client.get("/v1/deliveries", params={"subscription_id": world.subs[other]["id"]})
    assert by_other.status_code == 200 and by_other.json()["data"] == [], by_other.text
    by_type = all_pages(client, "/v1/deliveries", event_type=FANOUT_TYPE)
    assert [d["id"] for d in by_type] == [world.deliveries[me]["id"]]


@pytest.mark.parametrize(("me", "other"), [("s1", "s2"), ("s2", "s1")])
def test_subscriber_reads_its_own_delivery_and_attempts(world, me, other):
    client = world.client(me)
    own = client.get(f"/v1/deliveries/{world.deliveries[me]['id']}")
    assert own.status_code == 200, own.text
    assert own.json()["subscription_id"] == world.subs[me]["id"]
    attempts = client.get(f"/v1/deliveries/{world.deliveries[me]['id']}/attempts")
    assert attempts.status_code == 200, attempts.text
    assert [a["outcome"] for a in attempts.json()["data"]] == ["succeeded"]


@pytest.mark.parametrize(("me", "other"), [("s1", "s2"), ("s2", "s1")])
def test_subscriber_gets_404_for_anothers_delivery(world, me, other):
    client = world.client(me)
    theirs = world.deliveries[other]["id"]
    assert_error(client.get(f"/v1/deliveries/{theirs}"), 404, "not_found")
    assert_error(client.get(f"/v1/deliveries/{theirs}/attempts"), 404, "not_found")
    assert_error(client.post(f"/v1/deliveries/{theirs}/retry"), 404, "not_found")
    # The refused retry scheduled nothing.
    after = world.client("admin").get(f"/v1/deliveries/{theirs}").json()
    assert after["status"] == "succeeded" and after["attempts"] == 1, after


# ---- admin ------------------------------------------------------------------------------------


def test_admin_sees_every_subscription(world):
    admin = world.client("admin")
    listed = {s["id"] for s in all_pages(admin, "/v1/subscriptions")}
    assert {world.subs[n]["id"] for n in ("s1", "s2", "admin")} <= listed
    for name in ("s1", "s2", "admin"):
        got = admin.get(f"/v1/subscriptions/{world.subs[name]['id']}")
        assert got.status_code == 200, got.text


def test_admin_sees_every_delivery(world):
    admin = world.client("admin")
    listed = {d["id"] for d in all_pages(admin, "/v1/deliveries")}
    assert {world.deliveries["s1"]["id"], world.deliveries["s2"]["id"]} <= listed
    for name in ("s1", "s2"):
        delivery_id = world.deliveries[name]["id"]
        assert admin.get(f"/v1/deliveries/{delivery_id}").status_code == 200
        attempts = admin.get(f"/v1/deliveries/{delivery_id}/attempts")
        assert attempts.status_code == 200 and len(attempts.json()["data"]) == 1


def test_created_key_is_shown_once_with_its_fields(world):
    admin = world.client("admin")
    made = admin.post("/v1/api-keys", json={"role": "subscriber", "name": "shown-once"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert set(body) == {"id", "role", "name", "key", "tenant_id", "created_at"}
    assert body["id"].startswith("key_") and body["role"] == "subscriber"
    assert isinstance(body["key"], str) and len(body["key"]) >= 16


def test_listing_keys_never_returns_the_key_or_its_hash(world):
    admin = world.client("admin")
    response = admin.get("/v1/api-keys", params={"limit": 500})
    assert response.status_code == 200, response.text
    listed = response.json()["data"]
    assert {world.keys[n]["id"] for n in ("pub", "s1", "s2")} <= {k["id"] for k in listed}
    for row in listed:
        assert "key" not in row and "key_hash" not in row, row
        assert set(row) == {"id", "role", "name", "tenant_id", "created_at"}, row
    for name in ("pub", "s1", "s2"):
        assert world.keys[name]["key"] not in response.text
    assert ADMIN_TOKEN not in response.text
    assert not re.search(r"\b[0-9a-f]{64}\b", response.text), "a SHA-256 hex digest leaked"


def test_unknown_but_well_formed_key_is_401(world):
    with httpx.Client(
        base_url=world.server.url,
        timeout=30,
        headers={"authorization": f"Bearer {ids.new_id('key')}"},
    ) as client:
        assert_error(client.get("/v1/events"), 401, "unauthorized")
