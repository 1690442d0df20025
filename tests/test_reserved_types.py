"""dispatcher's own event types (``dispatcher.…``): publishers cannot post them, and ``*``
does not reach them (API.md, "Operational events")."""

from __future__ import annotations

import pytest

from .test_delivery import publish, subscribe


@pytest.mark.parametrize("event_type", ["dispatcher.subscription.disabled",
                                        "dispatcher.delivery.failed", "dispatcher.x"])
def test_a_publisher_cannot_post_a_dispatcher_type(admin, event_type):
    answer = admin.post("/v1/events", json={"type": event_type, "data": {}})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "reserved_event_type" and error["message"].startswith("type: ")
    assert admin.get("/v1/events", params={"type": event_type}).json()["data"] == []


def test_types_that_only_look_alike_are_posted_and_star_reaches_them(admin):
    subscribe(admin, "http://127.0.0.1:9/all")  # event_types ["*"]
    subscribe(admin, "http://127.0.0.1:9/ops", event_types=["dispatcher.*"])
    for event_type in ("dispatcher", "dispatchers.x", "Dispatcher.x"):
        assert publish(admin, event_type)["deliveries"] == 1, event_type
