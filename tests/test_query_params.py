"""A query parameter the endpoint does not take → 400 ``unknown_parameter`` naming it, on
every /v1 route, before anything is read or changed: a typo never widens a result."""

from __future__ import annotations

import pytest

from dispatcher.api.query import MAX_NAMED, unknown_message, unknown_parameters

from .harness import Receiver, poll


def assert_unknown(response, *names):
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_parameter"
    for name in names:
        assert repr(name) in error["message"], error["message"]
    return error["message"]


@pytest.mark.parametrize(("given", "known", "unknown"), [
    ([], frozenset(), []),
    (["limit"], frozenset({"limit"}), []),
    (["limit", "limit"], frozenset({"limit"}), []),
    (["created_after"], frozenset({"after", "before"}), ["created_after"]),
    (["b", "a", "b", "after"], frozenset({"after"}), ["a", "b"]),
    (["Limit"], frozenset({"limit"}), ["Limit"]),  # names are case-sensitive
    ([""], frozenset({"limit"}), [""]),
])
def test_unknown_parameters(given, known, unknown):
    assert unknown_parameters(given, known) == unknown


@pytest.mark.parametrize(("unknown", "known", "message"), [
    (["x"], frozenset({"b", "a"}), "unknown query parameter 'x'; this endpoint takes: a, b"),
    (["x", "y"], frozenset(), "unknown query parameters 'x', 'y'; this endpoint takes no "
                              "query parameters"),
    ([str(i) for i in range(MAX_NAMED + 2)], frozenset({"a"}),
     "unknown query parameters '0', '1', '2', '3', '4' and 2 more; this endpoint takes: a"),
    (["z" * 500], frozenset({"a"}), f"unknown query parameter '{'z' * 64}'; "
                                    "this endpoint takes: a"),
])
def test_unknown_message(unknown, known, message):
    assert unknown_message(unknown, known) == message


def test_a_misspelt_filter_is_400_not_the_whole_list(admin):
    first = admin.post("/v1/events", json={"type": "a.first"}).json()
    admin.post("/v1/events", json={"type": "a.second"})
    # The filter is `after`: `created_after` used to be ignored and both events came back.
    message = assert_unknown(
        admin.get("/v1/events", params={"created_after": first["created_at"]}), "created_after")
    assert "after" in message.partition("takes:")[2]
    assert_unknown(admin.get("/v1/deliveries", params={"statuss": "failed", "limit": 1}),
                   "statuss")
    assert_unknown(admin.get("/v1/subscriptions", params={"zz": "1", "aa": ""}), "aa", "zz")
    # What the endpoint takes still works, together.
    listed = admin.get("/v1/events", params={"after": first["created_at"], "limit": 5,
                                              "order": "asc", "type": "a.second"})
    assert listed.status_code == 200, listed.text
    assert [e["type"] for e in listed.json()["data"]] == ["a.second"]


def test_every_v1_operation_refuses_an_unknown_parameter_and_changes_nothing(admin):
    with Receiver() as receiver:
        sub = admin.post("/v1/subscriptions", json={"url": receiver.url}).json()
        event = admin.post("/v1/events", json={"type": "a.b"}).json()
        [delivery] = poll(lambda: [d for d in admin.get(
            f"/v1/events/{event['id']}/deliveries").json()["data"]
            if d["status"] == "succeeded"], message="the delivery")
        key = admin.post("/v1/api-keys", json={"role": "publisher", "name": "p"}).json()
        tenant = admin.put("/v1/tenants/acme-query", json={"name": "Acme"}).json()
        kind = admin.put("/v1/event-types/a.b", json={"description": "d"}).json()
        values = {"sub_id": sub["id"], "event_id": event["id"], "delivery_id": delivery["id"],
                  "key_id": key["id"], "tenant_id": tenant["id"], "event_type": "a.b"}
        schema = admin.get("/openapi.json").json()
        tried = 0
        for path, operations in schema["paths"].items():
            if not path.startswith("/v1/"):
                continue
            for method, operation in operations.items():
                assert "400" in operation["responses"], f"{method} {path} documents no 400"
                body = {} if method in ("post", "patch", "put") else None
                answer = admin.request(method.upper(), path.format(**values),
                                       params={"bogus_param": "1"}, json=body)
                assert_unknown(answer, "bogus_param")
                tried += 1
        assert tried >= 15
        # Nothing was created, changed, sent or deleted.
        assert len(admin.get("/v1/events").json()["data"]) == 1
        assert admin.get(f"/v1/subscriptions/{sub['id']}").json()["secret"] == sub["secret"]
        assert [k["id"] for k in admin.get("/v1/api-keys").json()["data"]].count(key["id"]) == 1
        assert admin.get(f"/v1/deliveries/{delivery['id']}").json()["attempts"] == 1
        assert receiver.count() == 1
        assert admin.get("/v1/tenants/acme-query").json() == tenant
        assert admin.get("/v1/event-types/a.b").json() == kind
