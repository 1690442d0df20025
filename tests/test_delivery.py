"""End to end: real receivers on 127.0.0.1, the real app, a real SQLite file."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from .harness import Receiver, Reply, poll


def subscribe(admin, url, **fields):
    response = admin.post("/v1/subscriptions", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def publish(admin, event_type="invoice.paid", data=None, **kwargs):
    response = admin.post("/v1/events", json={"type": event_type, "data": data or {}}, **kwargs)
    assert response.status_code in (200, 202), response.text
    return response.json()


def deliveries_of(admin, event_id):
    return admin.get(f"/v1/events/{event_id}/deliveries").json()["data"]


def settled(admin, event_id, count=1):
    """Poll until the event's deliveries all left `pending`; return them."""

    def check():
        found = deliveries_of(admin, event_id)
        done = [d for d in found if d["status"] != "pending"]
        return found if len(found) == count and len(done) == count else None

    return poll(check, 15, message=f"{count} settled deliveries of {event_id}")


def attempts_of(admin, delivery_id):
    response = admin.get(f"/v1/deliveries/{delivery_id}/attempts", params={"order": "asc"})
    assert response.status_code == 200
    return response.json()["data"]


def test_fan_out_reaches_only_matching_subscriptions(admin):
    with Receiver() as invoices, Receiver() as users, Receiver() as everything, \
            Receiver() as disabled:
        subscribe(admin, invoices.url, event_types=["invoice.*"])
        subscribe(admin, users.url, event_types=["user.created"])
        subscribe(admin, everything.url)
        off = subscribe(admin, disabled.url, event_types=["invoice.*"], enabled=False)

        paid = publish(admin, "invoice.paid")
        created = publish(admin, "user.created")
        other = publish(admin, "user.deleted")
        assert (paid["deliveries"], created["deliveries"], other["deliveries"]) == (3, 2, 1)

        settled(admin, created["id"], 2)
        settled(admin, other["id"], 1)
        poll(lambda: invoices.count() == 1 and everything.count() == 3)
        assert invoices.ids() == [paid["id"]]
        assert users.ids() == [created["id"]]
        assert sorted(everything.ids()) == sorted([paid["id"], created["id"], other["id"]])
        held = [d for d in deliveries_of(admin, paid["id"]) if d["subscription_id"] == off["id"]]
        assert [d["status"] for d in held] == ["held"]
        assert disabled.count() == 0


def test_request_is_signed_with_exact_body_and_headers(admin):
    with Receiver() as receiver:
        sub = subscribe(admin, receiver.url, headers={"x-team": "billing"})
        event = publish(admin, "invoice.paid", {"id": "in_1", "amount": 4200, "note": "é"})
        poll(lambda: receiver.count() == 1)
        got = receiver.requests[0]
        payload = Webhook(sub["secret"]).verify(got.body, got.headers)
        detail = admin.get(f"/v1/events/{event['id']}").json()
        assert json.loads(got.body) == {
            "type": "invoice.paid",
            "timestamp": detail["created_at"],
            "data": {"id": "in_1", "amount": 4200, "note": "é"},
        }
        assert list(json.loads(got.body)) == ["type", "timestamp", "data"]
        assert payload["data"]["amount"] == 4200
        assert got.headers["webhook-id"] == event["id"]
        assert got.headers["content-type"] == "application/json"
        assert got.headers["user-agent"].startswith("dispatcher/")
        assert got.headers["x-team"] == "billing"
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 43 + "=").verify(got.body, got.headers)


def test_receiver_failing_twice_then_succeeding_ends_succeeded_with_three_attempts(admin):
    with Receiver(lambda n, r: Reply(500 if n <= 2 else 200)) as receiver:
        sub = subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        assert delivery["status"] == "succeeded"
        assert delivery["attempts"] == 3
        assert delivery["last_status_code"] == 200
        attempts = attempts_of(admin, delivery["id"])
        assert [a["number"] for a in attempts] == [1, 2, 3]
        assert [a["outcome"] for a in attempts] == ["failed", "failed", "succeeded"]
        assert [a["status_code"] for a in attempts] == [500, 500, 200]
        assert {a["trigger"] for a in attempts} == {"scheduled"}
        # The same webhook-id on every retry: the receiver's idempotency key.
        assert receiver.ids() == [event["id"]] * 3
        for got in receiver.requests:
            Webhook(sub["secret"]).verify(got.body, got.headers)
        # Retries wait (schedule 0.2 s then 0.4 s in these tests), they are not immediate.
        gaps = [b.at - a.at for a, b in pairwise(receiver.requests)]
        assert gaps[0] >= 0.15 and gaps[1] >= 0.3


def test_receiver_always_failing_ends_failed_after_the_schedule(admin, settings):
    with Receiver(lambda n, r: Reply(503, b"down")) as receiver:
        subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        assert delivery["status"] == "failed"
        assert delivery["attempts"] == len(settings.retry_schedule) + 1
        assert delivery["next_attempt_at"] is None
        attempts = attempts_of(admin, delivery["id"])
        assert [a["response_body"] for a in attempts] == ["down"] * 3
        assert receiver.count() == 3


@pytest.mark.parametrize(
    ("status", "headers", "error_part"),
    [
        (301, {"location": "https://elsewhere.example/"}, "redirect not followed"),
        (302, {"location": "/other"}, "redirect not followed"),
        (400, {}, None),
        (404, {}, None),
        (422, {}, None),
    ],
)
def test_redirects_and_client_errors_fail_at_once(admin, status, headers, error_part):
    with Receiver(lambda n, r: Reply(status, b"no", headers)) as receiver:
        subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        assert delivery["status"] == "failed"
        assert delivery["attempts"] == 1
        assert delivery["last_status_code"] == status
        if error_part:
            assert error_part in delivery["last_error"]
        assert receiver.count() == 1


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502])
def test_retryable_answers_are_retried(admin, status):
    with Receiver(lambda n, r: Reply(status if n == 1 else 200)) as receiver:
        subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 2)


def test_gone_fails_and_disables_the_subscription(admin):
    with Receiver(lambda n, r: Reply(410)) as receiver:
        sub = subscribe(admin, receiver.url)
        first = publish(admin)
        [delivery] = settled(admin, first["id"])
        assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
        after = admin.get(f"/v1/subscriptions/{sub['id']}").json()
        assert (after["enabled"], after["disabled_reason"]) == (False, "gone")
        second = publish(admin)
        assert [d["status"] for d in deliveries_of(admin, second["id"])] == ["held"]


def test_retry_after_is_honoured(serve):
    # Retry-After: 1 on a 429 replaces the 0.2 s first delay (the cap is the longest, 2 s).
    with serve(retry_schedule=(0.2, 2.0)) as admin, Receiver(
        lambda n, r: Reply(429, headers={"retry-after": "1"}) if n == 1 else Reply(200)
    ) as receiver:
        subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        assert delivery["status"] == "succeeded"
        gap = receiver.requests[1].at - receiver.requests[0].at
        assert 0.9 <= gap < 2.0


def test_timeouts_and_connection_errors_are_retried(serve):
    replies = {1: Reply(delay=2.0), 2: Reply(close_without_answer=True)}
    with serve(delivery_timeout_seconds=0.5) as admin, \
            Receiver(lambda n, r: replies.get(n, Reply())) as receiver:
        subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 3)
        first, second, third = attempts_of(admin, delivery["id"])
        assert first["status_code"] is None and "timeout" in first["error"]
        assert first["duration_ms"] < 1500
        assert second["status_code"] is None and second["error"]
        assert third["status_code"] == 200 and third["error"] is None


def test_only_the_first_4_kib_of_a_response_is_kept(admin):
    with Receiver(lambda n, r: Reply(200, b"x" * 50_000)) as receiver:
        subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        [attempt] = attempts_of(admin, delivery["id"])
        assert attempt["response_body"] == "x" * 4096


def test_idempotent_ingest(admin, client_for):
    with Receiver() as receiver:
        subscribe(admin, receiver.url)
        headers = {"idempotency-key": "order-42"}
        first = admin.post("/v1/events", json={"type": "a.b", "data": {}}, headers=headers)
        again = admin.post("/v1/events", json={"type": "a.b", "data": {}}, headers=headers)
        assert (first.status_code, again.status_code) == (202, 200)
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["deliveries"] == first.json()["deliveries"] == 1
        settled(admin, first.json()["id"])
        assert receiver.ids() == [first.json()["id"]]
        # The same key from another publisher is another event.
        key = admin.post("/v1/api-keys", json={"role": "publisher", "name": "p2"}).json()["key"]
        other = client_for(key).post("/v1/events", json={"type": "a.b"}, headers=headers)
        assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
        events = admin.get("/v1/events").json()["data"]
        assert len(events) == 2


def test_rotation_gives_two_valid_signatures_during_the_grace_period(admin):
    with Receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        rotated = admin.post(f"/v1/subscriptions/{sub['id']}/rotate-secret",
                             json={"grace_period_seconds": 3600})
        assert rotated.status_code == 200
        new_secret = rotated.json()["secret"]
        assert new_secret != sub["secret"]
        publish(admin)
        poll(lambda: receiver.count() == 1)
        got = receiver.requests[0]
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        Webhook(sub["secret"]).verify(got.body, got.headers)
        Webhook(new_secret).verify(got.body, got.headers)

        # Without a grace period only the newest secret signs.
        newest = admin.post(f"/v1/subscriptions/{sub['id']}/rotate-secret",
                            json={"grace_period_seconds": 0}).json()["secret"]
        publish(admin)
        poll(lambda: receiver.count() == 2)
        got = receiver.requests[1]
        Webhook(newest).verify(got.body, got.headers)
        # The first secret's grace period is still running; the second one's was zero.
        Webhook(sub["secret"]).verify(got.body, got.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret).verify(got.body, got.headers)


def test_manual_retry_of_a_failed_delivery(admin):
    with Receiver(lambda n, r: Reply(400 if n == 1 else 200)) as receiver:
        subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        assert delivery["status"] == "failed"
        retried = admin.post(f"/v1/deliveries/{delivery['id']}/retry")
        assert retried.status_code == 202
        poll(lambda: admin.get(f"/v1/deliveries/{delivery['id']}").json()["status"]
             == "succeeded")
        attempts = attempts_of(admin, delivery["id"])
        assert [(a["trigger"], a["outcome"]) for a in attempts] == [
            ("scheduled", "failed"), ("manual", "succeeded")]
        assert receiver.ids() == [event["id"]] * 2


def test_failed_manual_retry_leaves_the_delivery_failed(admin):
    with Receiver(lambda n, r: Reply(400)) as receiver:
        subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        admin.post(f"/v1/deliveries/{delivery['id']}/retry")
        poll(lambda: len(attempts_of(admin, delivery["id"])) == 2)
        after = poll(lambda: (d := admin.get(f"/v1/deliveries/{delivery['id']}").json())
                     ["status"] != "pending" and d)
        assert (after["status"], after["attempts"]) == ("failed", 2)
        assert receiver.count() == 2


def test_a_finished_delivery_of_a_deleted_subscription_is_not_retried(admin):
    with Receiver(lambda n, r: Reply(400)) as receiver:
        sub = subscribe(admin, receiver.url)
        [delivery] = settled(admin, publish(admin)["id"])
        assert delivery["status"] == "failed"
        assert admin.delete(f"/v1/subscriptions/{sub['id']}").status_code == 204
        refused = admin.post(f"/v1/deliveries/{delivery['id']}/retry")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "subscription_deleted"
        assert admin.get(f"/v1/deliveries/{delivery['id']}").json()["status"] == "failed"
        assert receiver.count() == 1


def test_reenabling_releases_held_deliveries_and_deleting_cancels(admin):
    with Receiver() as receiver, Receiver() as doomed:
        sub = subscribe(admin, receiver.url, enabled=False)
        gone = subscribe(admin, doomed.url, enabled=False)
        events = [publish(admin) for _ in range(3)]
        for event in events:
            assert {d["status"] for d in deliveries_of(admin, event["id"])} == {"held"}
        assert admin.delete(f"/v1/subscriptions/{gone['id']}").status_code == 204
        patched = admin.patch(f"/v1/subscriptions/{sub['id']}", json={"enabled": True})
        assert patched.json()["enabled"] is True and patched.json()["disabled_reason"] is None
        poll(lambda: receiver.count() == 3)
        assert sorted(receiver.ids()) == sorted(e["id"] for e in events)
        cancelled = admin.get("/v1/deliveries", params={"subscription_id": gone["id"]}).json()
        assert {d["status"] for d in cancelled["data"]} == {"cancelled"}
        assert doomed.count() == 0
        assert admin.get(f"/v1/subscriptions/{gone['id']}").status_code == 404


def test_new_events_wake_the_worker_and_retries_come_due_without_polling(serve):
    # A poll interval far longer than the test: only wake-ups can make this pass in time.
    with serve(poll_interval_seconds=60) as admin, \
            Receiver(lambda n, r: Reply(500 if n <= 2 else 200)) as receiver:
        subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 3)
        later = publish(admin)
        [delivery] = settled(admin, later["id"])
        assert delivery["status"] == "succeeded"


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_both_http_transports_deliver(serve, transport):
    with serve(http_transport=transport) as admin, \
            Receiver(lambda n, r: Reply(503 if n == 1 else 200, b"y" * 9000)) as receiver:
        sub = subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 2)
        assert [a["response_body"] for a in attempts_of(admin, delivery["id"])] == ["y" * 4096] * 2
        for got in receiver.requests:
            Webhook(sub["secret"]).verify(got.body, got.headers)
