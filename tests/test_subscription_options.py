"""A subscription's own retry schedule and attempt deadline, through the API on both
engines: stored, shown, changed, followed by the worker, and refused with the place named
when out of bounds."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from .databases import scalar
from .harness import Receiver, Reply, poll
from .test_delivery import attempts_of, publish, settled, subscribe


def _error(answer, status, code):
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    return error["message"]


def _started(attempt):
    return datetime.fromisoformat(attempt["started_at"].replace("Z", "+00:00"))


def test_a_subscription_retries_on_its_own_schedule(admin):
    # The tests' global schedule is (0.2, 0.4): three attempts in all.
    with Receiver(lambda n, r: Reply(500)) as own, Receiver(lambda n, r: Reply(500)) as other:
        mine = subscribe(admin, own.url, event_types=["own.*"],
                         retry_schedule=[0.5, 0.5, 0.5, 0.5])
        subscribe(admin, other.url, event_types=["other.*"])
        assert mine["retry_schedule"] == [0.5, 0.5, 0.5, 0.5]
        [delivery] = settled(admin, publish(admin, "own.thing")["id"])
        [global_one] = settled(admin, publish(admin, "other.thing")["id"])
        assert (delivery["status"], delivery["attempts"]) == ("failed", 5)
        assert (global_one["status"], global_one["attempts"]) == ("failed", 3)
        gaps = [(_started(b) - _started(a)).total_seconds()
                for a, b in pairwise(attempts_of(admin, delivery["id"]))]
        assert len(gaps) == 4 and all(gap >= 0.45 for gap in gaps), gaps
        assert own.count() == 5


def test_a_subscription_attempt_deadline_replaces_the_global_one(serve):
    with serve(delivery_timeout_seconds=1) as admin, \
            Receiver(lambda n, r: Reply(200, delay=2.0)) as slow:
        longer = subscribe(admin, slow.url + "?long", event_types=["long.*"], timeout_seconds=4,
                           retry_schedule=[60])
        subscribe(admin, slow.url + "?short", event_types=["short.*"], retry_schedule=[60])
        assert longer["timeout_seconds"] == 4
        [waited] = settled(admin, publish(admin, "long.call")["id"])
        assert (waited["status"], waited["attempts"]) == ("succeeded", 1)
        short = publish(admin, "short.call")
        [delivery] = admin.get(f"/v1/events/{short['id']}/deliveries").json()["data"]
        [cut] = poll(lambda: attempts_of(admin, delivery["id"]), 15,
                     message="the short attempt recorded")
        assert cut["status_code"] is None and cut["duration_ms"] < 1900, cut
        # The retry waits the subscription's 60 s, not the global 0.2 s.
        assert admin.get(f"/v1/deliveries/{delivery['id']}").json()["status"] == "pending"


def test_options_are_shown_changed_and_removed(admin):
    sub = subscribe(admin, "http://127.0.0.1:9/o")
    url = f"/v1/subscriptions/{sub['id']}"
    assert (sub["retry_schedule"], sub["timeout_seconds"]) == (None, None)
    changed = admin.patch(url, json={"retry_schedule": [10, 20.5], "timeout_seconds": 30})
    assert changed.status_code == 200, changed.text
    shown = admin.get(url).json()
    assert (shown["retry_schedule"], shown["timeout_seconds"]) == ([10, 20.5], 30)
    kept = admin.patch(url, json={"description": "x"}).json()
    assert (kept["retry_schedule"], kept["timeout_seconds"]) == ([10, 20.5], 30)
    cleared = admin.patch(url, json={"retry_schedule": None, "timeout_seconds": None}).json()
    assert (cleared["retry_schedule"], cleared["timeout_seconds"]) == (None, None)
    assert admin.get(url).json()["retry_schedule"] is None


@pytest.mark.parametrize("fields, place", [
    ({"retry_schedule": []}, "retry_schedule"),
    ({"retry_schedule": [1] * 21}, "retry_schedule"),
    ({"retry_schedule": [5, -1]}, "retry_schedule.1"),
    ({"retry_schedule": [0]}, "retry_schedule.0"),
    ({"retry_schedule": [604_801]}, "retry_schedule.0"),
    ({"retry_schedule": ["soon"]}, "retry_schedule.0"),
    ({"retry_schedule": 60}, "retry_schedule"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
    ({"timeout_seconds": 61}, "timeout_seconds"),
    ({"timeout_seconds": 1.5}, "timeout_seconds"),
    ({"timeout_seconds": "ten"}, "timeout_seconds"),
])
def test_options_out_of_bounds_are_refused_with_the_place(admin, fields, place):
    sub = subscribe(admin, "http://127.0.0.1:9/b", retry_schedule=[7], timeout_seconds=9)
    for answer in (admin.post("/v1/subscriptions", json={"url": "http://127.0.0.1:9/c",
                                                          **fields}),
                   admin.patch(f"/v1/subscriptions/{sub['id']}", json=fields)):
        assert _error(answer, 422, "validation_error").startswith(place + ": ")
    shown = admin.get(f"/v1/subscriptions/{sub['id']}").json()
    assert (shown["retry_schedule"], shown["timeout_seconds"]) == ([7], 9)


def test_seven_days_and_twenty_delays_are_allowed(admin):
    sub = subscribe(admin, "http://127.0.0.1:9/d", retry_schedule=[604_800] + [1] * 19,
                    timeout_seconds=60)
    assert len(sub["retry_schedule"]) == 20 and sub["timeout_seconds"] == 60


def test_leases_follow_the_longest_deadline_in_use(serve, database_url):
    """Global deadline 1 s: a claim leases for 12 s and renews every 4 s. A subscription
    with 20 s holds its attempt open 9 s: the lease is renewed to 2 x 20 + 10 s, so no other
    worker could take the delivery while it is still being sent."""
    with serve(delivery_timeout_seconds=1) as admin, \
            Receiver(lambda n, r: Reply(200, delay=9.0)) as slow:
        subscribe(admin, slow.url, timeout_seconds=20)
        event = publish(admin)
        poll(lambda: slow.count() == 1 or None, 10, message="the request arrived")
        lease = "SELECT lease_until FROM delivery WHERE event_id = :e"

        def renewed():
            until = scalar(database_url, lease, e=event["id"])
            if until is None:
                return None
            until = until if isinstance(until, datetime) else datetime.fromisoformat(until)
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)  # SQLite keeps UTC without a zone
            left = (until - datetime.now(UTC)).total_seconds()
            return left if left > 20 else None

        assert poll(renewed, 8, 0.2, message="the lease renewed for the longer deadline") <= 50
        [delivery] = settled(admin, event["id"])
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 1)
