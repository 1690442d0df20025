from __future__ import annotations

from standardwebhooks import Webhook

from .harness import Receiver, poll


def test_event_reaches_subscriber_signed(admin):
    with Receiver() as receiver:
        sub = admin.post("/v1/subscriptions", json={"url": receiver.url}).json()
        accepted = admin.post("/v1/events", json={"type": "a.b", "data": {"x": 1}})
        assert accepted.status_code == 202, accepted.text
        poll(lambda: receiver.count() == 1)
        got = receiver.requests[0]
        Webhook(sub["secret"]).verify(got.body, got.headers)
        assert got.headers["webhook-id"] == accepted.json()["id"]
