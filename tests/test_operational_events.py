"""Operational events end to end, on both engines (API.md, "Operational events"): what
disabling, recovery and failure for good publish to an admin's ``dispatcher.*``
subscription, exactly once each; that ``*``, tenants and other keys get none; and that an
operator endpoint that fails makes no events about itself."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import sqlalchemy as sa
from standardwebhooks import Webhook

from dispatcher.clock import utcnow
from dispatcher.models import subscription_table

from .databases import execute
from .harness import Receiver, Reply, poll
from .test_delivery import publish, settled, subscribe

OPS = ["dispatcher.*"]


def _news(receiver):
    """The operational events a receiver got, as (type, data), in arrival order."""
    return [(body["type"], body["data"]) for body in
            (json.loads(r.body) for r in receiver.requests) if body["type"].startswith(
                "dispatcher.")]


def _stored(admin, event_type):
    return admin.get("/v1/events", params={"type": event_type}).json()["data"]


def _quiet_for(seconds, *counts):
    """``counts()`` stay as they are for ``seconds`` (no late or repeated event)."""
    before = [c() for c in counts]
    time.sleep(seconds)
    assert [c() for c in counts] == before


def _set_streak(database_url, sub_id, ago):
    execute(database_url, sa.update(subscription_table)
            .where(subscription_table.c.id == sub_id)
            .values(failing_since=utcnow() - timedelta(seconds=ago)))


def test_a_410_disables_and_tells_the_operator_once_each(admin):
    with Receiver() as ops, Receiver() as everything, \
            Receiver(lambda n, r: Reply(410)) as gone:
        watch = subscribe(admin, ops.url, event_types=OPS)
        subscribe(admin, everything.url)  # "*"
        sub = subscribe(admin, gone.url, event_types=["order.*"])
        event = publish(admin, "order.placed")
        settled(admin, event["id"], count=2)
        poll(lambda: len(_news(ops)) >= 2, message="two operational events")
        _quiet_for(1.0, ops.count, everything.count)
        news = dict(_news(ops))
        assert sorted(t for t, _ in _news(ops)) == [
            "dispatcher.delivery.failed", "dispatcher.subscription.disabled"]
        assert news["dispatcher.subscription.disabled"] == {
            "subscription_id": sub["id"], "tenant_id": None, "reason": "gone"}
        failed = news["dispatcher.delivery.failed"]
        [mine] = [d for d in admin.get(f"/v1/events/{event['id']}/deliveries").json()["data"]
                  if d["subscription_id"] == sub["id"]]
        assert failed == {"delivery_id": mine["id"], "event_id": event["id"],
                          "event_type": "order.placed", "subscription_id": sub["id"],
                          "tenant_id": None, "attempts": 1, "last_status_code": 410,
                          "last_error": failed["last_error"]}
        # "*" reaches the publisher's event, never dispatcher's own.
        assert [json.loads(r.body)["type"] for r in everything.requests] == ["order.placed"]
        # Ordinary events: stored with no tenant, and signed like any other.
        [stored] = _stored(admin, "dispatcher.subscription.disabled")
        assert stored["tenant_id"] is None
        request = next(r for r in ops.requests
                       if json.loads(r.body)["type"] == "dispatcher.subscription.disabled")
        Webhook(watch["secret"]).verify(request.body, request.headers)


def test_an_exhausted_delivery_is_told_once_with_its_last_answer(admin):
    # The tests' schedule (0.2, 0.4): three attempts, then failed for good.
    with Receiver() as ops, Receiver(lambda n, r: Reply(503)) as failing:
        subscribe(admin, ops.url, event_types=["dispatcher.delivery.failed"])
        sub = subscribe(admin, failing.url, event_types=["order.*"])
        event = publish(admin, "order.placed")
        [delivery] = settled(admin, event["id"])
        assert (delivery["status"], delivery["attempts"]) == ("failed", 3)
        poll(lambda: _news(ops), message="the delivery.failed event")
        _quiet_for(1.0, ops.count)
        [(kind, data)] = _news(ops)
        assert kind == "dispatcher.delivery.failed"
        assert (data["delivery_id"], data["subscription_id"], data["attempts"],
                data["last_status_code"]) == (delivery["id"], sub["id"], 3, 503)
        # A manual retry of the failed delivery that fails again tells nothing new.
        assert admin.post(f"/v1/deliveries/{delivery['id']}/retry").status_code == 202
        poll(lambda: failing.count() == 4, message="the manual attempt")
        _quiet_for(1.0, ops.count)
        assert len(_news(ops)) == 1


def test_an_operator_endpoint_that_fails_makes_no_events_about_itself(admin):
    with Receiver(lambda n, r: Reply(503)) as ops, Receiver(lambda n, r: Reply(410)) as ops_gone, \
            Receiver(lambda n, r: Reply(410)) as gone:
        failing_watch = subscribe(admin, ops.url, event_types=OPS)
        gone_watch = subscribe(admin, ops_gone.url, event_types=OPS)
        subscribe(admin, gone.url, event_types=["order.*"])
        publish(admin, "order.placed")
        # The 410: its subscription disabled, its delivery failed; nothing more, although
        # one operator endpoint fails every attempt and the other answers 410 (disabled).
        poll(lambda: ops.count() >= 6, 15, message="the failing watcher's three tries of two")
        poll(lambda: admin.get(f"/v1/subscriptions/{gone_watch['id']}").json()["enabled"]
             is False, message="the 410 watcher disabled")

        def told():
            return sorted(e["type"] for t in ("dispatcher.subscription.disabled",
                                              "dispatcher.delivery.failed")
                          for e in _stored(admin, t))

        assert told() == ["dispatcher.delivery.failed", "dispatcher.subscription.disabled"]
        _quiet_for(1.5, told, ops.count, ops_gone.count)
        # Two deliveries to the 410 watcher may have been in flight together.
        assert ops.count() == 6 and ops_gone.count() in (1, 2)
        assert admin.get(f"/v1/subscriptions/{failing_watch['id']}").json()["enabled"]


def test_a_long_streak_ended_by_a_success_is_told_a_short_one_is_not(admin, database_url):
    with Receiver() as ops, Receiver() as healthy:
        subscribe(admin, ops.url, event_types=["dispatcher.subscription.recovered"])
        long = subscribe(admin, healthy.url + "?long", event_types=["long.*"])
        short = subscribe(admin, healthy.url + "?short", event_types=["short.*"])
        _set_streak(database_url, long["id"], ago=600)
        _set_streak(database_url, short["id"], ago=10)
        settled(admin, publish(admin, "long.one")["id"])
        settled(admin, publish(admin, "short.one")["id"])
        poll(lambda: _news(ops), message="the recovered event")
        settled(admin, publish(admin, "long.two")["id"])
        _quiet_for(1.0, ops.count)
        assert _news(ops) == [("dispatcher.subscription.recovered",
                               {"subscription_id": long["id"], "tenant_id": None})]


def test_disabling_by_hand_and_a_long_streak_are_told_with_their_reason(serve, database_url):
    with serve(disable_after_seconds=60) as admin, Receiver() as ops, \
            Receiver(lambda n, r: Reply(500)) as failing:
        subscribe(admin, ops.url, event_types=["dispatcher.subscription.disabled"])
        by_hand = subscribe(admin, "http://127.0.0.1:9/off")
        url = f"/v1/subscriptions/{by_hand['id']}"
        assert admin.patch(url, json={"enabled": False}).status_code == 200
        assert admin.patch(url, json={"enabled": False}).status_code == 200  # no change
        streaked = subscribe(admin, failing.url, event_types=["order.*"])
        _set_streak(database_url, streaked["id"], ago=120)
        publish(admin, "order.placed")
        poll(lambda: len(_news(ops)) >= 2, message="two disabled events")
        _quiet_for(1.0, ops.count)
        assert sorted((d["subscription_id"], d["reason"]) for _, d in _news(ops)) == sorted(
            [(by_hand["id"], "manual"), (streaked["id"], "failing")])


def test_only_an_admin_subscription_of_no_tenant_may_name_them(admin, client_for):
    assert admin.put("/v1/tenants/acme", json={}).status_code in (200, 201)
    keys = {name: admin.post("/v1/api-keys", json=body).json()["key"] for name, body in {
        "subscriber": {"role": "subscriber", "name": "s"},
        "scoped": {"role": "subscriber", "name": "t", "tenant_id": "acme"}}.items()}
    for name, key in keys.items():
        client = client_for(key)
        refused = client.post("/v1/subscriptions", json={
            "url": "http://127.0.0.1:9/x", "event_types": ["a.b", "dispatcher.*"]})
        assert refused.status_code == 422, (name, refused.text)
        assert refused.json()["error"]["code"] == "reserved_event_type"
        assert "dispatcher.*" in refused.json()["error"]["message"]
        mine = subscribe(client, "http://127.0.0.1:9/x", event_types=["a.b"])
        changed = client.patch(f"/v1/subscriptions/{mine['id']}",
                               json={"event_types": ["dispatcher.delivery.failed"]})
        assert changed.status_code == 422, (name, changed.text)
    for_tenant = admin.post("/v1/subscriptions", json={
        "url": "http://127.0.0.1:9/x", "event_types": OPS, "tenant_id": "acme"})
    assert for_tenant.status_code == 422, for_tenant.text
    assert for_tenant.json()["error"]["code"] == "reserved_event_type"
    assert subscribe(admin, "http://127.0.0.1:9/x", event_types=OPS)["event_types"] == OPS
