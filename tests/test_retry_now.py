"""``POST /v1/deliveries/{id}/retry`` is outside the schedule: a manual attempt that fails
neither uses up a scheduled retry nor moves a pending delivery's ``next_attempt_at``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from dispatcher.clock import utcnow
from dispatcher.config import Settings
from dispatcher.database import open_database
from dispatcher.models import delivery_table
from dispatcher.policy import Step, delivery_after
from dispatcher.store import Store

from .databases import scalar
from .harness import Receiver, Reply, poll

SCHEDULE = (60.0, 600.0)  # long enough that every next_attempt_at is measurable
NOW = datetime(2030, 1, 1, tzinfo=UTC)
DUE = NOW + timedelta(minutes=3)


@pytest.mark.parametrize(("step", "resume_status", "resume_at", "after"), [
    # scheduled attempts follow the policy
    (Step("succeeded"), None, None, ("succeeded", None)),
    (Step("pending", delay=60), None, None, ("pending", NOW + timedelta(seconds=60))),
    (Step("failed"), None, None, ("failed", None)),
    (Step("failed", gone=True), None, None, ("failed", None)),
    # manual ones: a success finishes the delivery, anything else leaves it as it was
    (Step("succeeded"), "pending", DUE, ("succeeded", None)),
    (Step("pending", delay=600), "pending", DUE, ("pending", DUE)),
    (Step("failed"), "pending", DUE, ("pending", DUE)),
    (Step("failed", gone=True), "pending", DUE, ("pending", DUE)),
    (Step("pending", delay=600), "pending", None, ("pending", NOW)),
    (Step("succeeded"), "failed", None, ("succeeded", None)),
    (Step("pending", delay=5), "failed", None, ("failed", None)),
    (Step("failed"), "succeeded", None, ("succeeded", None)),
    (Step("pending", delay=5), "held", None, ("held", None)),
])
def test_delivery_after(step, resume_status, resume_at, after):
    assert delivery_after(step, NOW, resume_status, resume_at) == after


def delivery(admin, delivery_id):
    return admin.get(f"/v1/deliveries/{delivery_id}").json()


def settle(admin, delivery_id, attempts):
    """Poll until the delivery's attempt number ``attempts`` is recorded."""
    return poll(lambda: (d := delivery(admin, delivery_id))["attempts"] == attempts and d,
                15, message=f"attempt {attempts} recorded")


def fast_forward(url, delivery_id):
    """Make the pending delivery due now, as if its next_attempt_at had come."""

    async def run():
        db = open_database(Settings(database_url=url))
        try:
            async with db.engine.begin() as conn:
                await conn.execute(sa.update(delivery_table).where(
                    delivery_table.c.id == delivery_id).values(next_attempt_at=utcnow()))
        finally:
            await db.dispose()

    asyncio.run(run())


def test_a_failed_retry_now_leaves_the_schedule_where_it_was(serve, database_url):
    failing = {"on": True}
    with serve(retry_schedule=SCHEDULE, poll_interval_seconds=0.1) as admin, \
            Receiver(lambda n, r: Reply(500 if failing["on"] else 200)) as receiver:
        admin.post("/v1/subscriptions", json={"url": receiver.url})
        event = admin.post("/v1/events", json={"type": "a.b"}).json()
        [made] = admin.get(f"/v1/events/{event['id']}/deliveries").json()["data"]
        first = settle(admin, made["id"], 1)
        assert first["status"] == "pending"
        due = first["next_attempt_at"]
        ahead = (datetime.fromisoformat(due) - datetime.now(UTC)).total_seconds()
        assert 40 < ahead <= 60, due
        # Three manual attempts fail: still pending, due when it was; with a schedule of two
        # retries, three used up would have failed it.
        for number in (2, 3, 4):
            retried = admin.post(f"/v1/deliveries/{made['id']}/retry")
            assert retried.status_code == 202, retried.text
            after = settle(admin, made["id"], number)
            assert (after["status"], after["next_attempt_at"]) == ("pending", due)
        attempts = admin.get(f"/v1/deliveries/{made['id']}/attempts",
                             params={"order": "asc"}).json()["data"]
        assert [(a["trigger"], a["status_code"]) for a in attempts] == [
            ("scheduled", 500), ("manual", 500), ("manual", 500), ("manual", 500)]
        assert scalar(database_url, "SELECT attempts - retry_base FROM delivery "
                      "WHERE id = :id", id=made["id"]) == 1
        # The next scheduled attempt is the schedule's second retry (600 s), not past it.
        fast_forward(database_url, made["id"])
        after = settle(admin, made["id"], 5)
        assert after["status"] == "pending"
        ahead = (datetime.fromisoformat(after["next_attempt_at"])
                 - datetime.now(UTC)).total_seconds()
        assert 500 < ahead <= 600, after
        # A manual success finishes it.
        failing["on"] = False
        assert admin.post(f"/v1/deliveries/{made['id']}/retry").status_code == 202
        done = settle(admin, made["id"], 6)
        assert (done["status"], done["next_attempt_at"]) == ("succeeded", None)
        assert receiver.count() == 6


def test_a_failed_retry_now_of_a_failed_delivery_keeps_it_failed(serve):
    with serve(retry_schedule=SCHEDULE) as admin, \
            Receiver(lambda n, r: Reply(400 if n == 1 else 503)) as receiver:
        admin.post("/v1/subscriptions", json={"url": receiver.url})
        event = admin.post("/v1/events", json={"type": "a.b"}).json()
        [made] = admin.get(f"/v1/events/{event['id']}/deliveries").json()["data"]
        assert settle(admin, made["id"], 1)["status"] == "failed"
        assert admin.post(f"/v1/deliveries/{made['id']}/retry").status_code == 202
        after = settle(admin, made["id"], 2)
        # 503 would be retried by the schedule; a manual attempt has none to continue.
        assert (after["status"], after["next_attempt_at"]) == ("failed", None)
        assert receiver.count() == 2


def test_asking_twice_before_the_attempt_queues_one_from_the_first_state(make_settings):
    settings = make_settings(retry_schedule=SCHEDULE)

    async def run():
        store = Store(open_database(settings))
        d = delivery_table
        try:
            await store.create_subscription("key_x", {"url": "http://127.0.0.1:9/x"})
            event, _ = await store.accept_event("key_x", "a.b", {}, None, 60)
            [row] = (await store.list_deliveries(None, event_id=event["id"])).rows
            due = utcnow() + timedelta(minutes=3)
            async with store.engine.begin() as conn:
                await conn.execute(sa.update(d).where(d.c.id == row["id"])
                                   .values(status="failed", next_attempt_at=None))
            await store.retry_now(row["id"], None)
            await store.retry_now(row["id"], None)  # a double click
            async with store.engine.connect() as conn:
                state = (await conn.execute(sa.select(
                    d.c.status, d.c.next_trigger, d.c.resume_status)
                    .where(d.c.id == row["id"]))).one()
            assert tuple(state) == ("pending", "manual", "failed")
            # A pending delivery: its due time is kept for after the attempt.
            async with store.engine.begin() as conn:
                await conn.execute(sa.update(d).where(d.c.id == row["id"]).values(
                    status="pending", next_trigger="scheduled", resume_status=None,
                    next_attempt_at=due))
            await store.retry_now(row["id"], None)
            await store.retry_now(row["id"], None)
            [job] = await store.claim_due("wrk_test", 10, 30)
            assert (job.trigger, job.resume_status, job.resume_at) == ("manual", "pending", due)
        finally:
            await store.db.dispose()

    asyncio.run(run())
