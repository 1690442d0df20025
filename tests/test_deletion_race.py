"""A subscription deleted while one of its deliveries is in flight: the attempt is recorded,
the delivery stays ``cancelled``, and nothing more is sent to the deleted subscription."""

from __future__ import annotations

import asyncio
import threading
import time

import sqlalchemy as sa

from dispatcher import migrate
from dispatcher.clock import utcnow
from dispatcher.config import Settings
from dispatcher.database import open_database
from dispatcher.models import delivery_table
from dispatcher.store import Store

from .databases import rows, scalar
from .harness import Receiver, Reply, poll

RETRY_DELAY = 0.3


def test_deleting_during_an_attempt_cancels_for_good(serve):
    held = threading.Event()

    def answer(n: int, _request) -> Reply:
        if n == 1:
            held.wait(20)  # the attempt stays open until the subscription is deleted
        return Reply(500)

    with serve(retry_schedule=(RETRY_DELAY, RETRY_DELAY), delivery_timeout_seconds=30,
               poll_interval_seconds=0.1) as admin, Receiver(answer) as receiver:
        sub = admin.post("/v1/subscriptions", json={"url": receiver.url}).json()
        event = admin.post("/v1/events", json={"type": "a.b"}).json()
        poll(lambda: receiver.count() == 1, message="the attempt to arrive")
        assert admin.delete(f"/v1/subscriptions/{sub['id']}").status_code == 204
        [made] = admin.get(f"/v1/events/{event['id']}/deliveries").json()["data"]
        assert made["status"] == "cancelled"
        held.set()  # now the attempt fails (500): retryable, were the delivery still open

        def attempts():
            return admin.get(f"/v1/deliveries/{made['id']}/attempts").json()["data"]

        [attempt] = poll(attempts, message="the attempt to be recorded")
        assert (attempt["status_code"], attempt["outcome"]) == (500, "failed")
        # Watch for longer than the retry delay: no request arrives, the status holds.
        deadline = time.monotonic() + 8 * RETRY_DELAY
        while time.monotonic() < deadline:
            assert receiver.count() == 1, "a retry was sent to a deleted subscription"
            now = admin.get(f"/v1/deliveries/{made['id']}").json()
            assert now["status"] == "cancelled", now
            time.sleep(0.05)
        assert (now["attempts"], now["next_attempt_at"]) == (1, None)
        assert len(attempts()) == 1


def test_the_claim_cancels_a_pending_delivery_of_a_deleted_subscription(make_settings):
    """A delivery left pending after its subscription's deletion (by the bug above, in an
    older version) is never sent: the claim cancels it."""
    settings = make_settings()

    async def run() -> None:
        store = Store(open_database(settings))
        d = delivery_table
        try:
            gone = await store.create_subscription("key_x", {"url": "http://127.0.0.1:9/gone"})
            kept = await store.create_subscription("key_x", {"url": "http://127.0.0.1:9/kept"})
            await store.accept_event("key_x", "a.b", {}, None, 60)
            await store.delete_subscription(gone["id"], None)
            async with store.engine.begin() as conn:
                await conn.execute(sa.update(d).where(d.c.subscription_id == gone["id"])
                                   .values(status="pending", next_attempt_at=utcnow()))
            jobs = await store.claim_due("wrk_test", 10, 30)
            assert [job.subscription_id for job in jobs] == [kept["id"]]
            async with store.engine.connect() as conn:
                left = (await conn.execute(sa.select(d.c.status, d.c.lease_owner)
                                           .where(d.c.subscription_id == gone["id"]))).all()
            assert [tuple(r) for r in left] == [("cancelled", None)]
            assert await store.claim_due("wrk_test", 10, 30) == []
        finally:
            await store.db.dispose()

    asyncio.run(run())


def test_upgrading_cancels_open_deliveries_of_deleted_subscriptions(databases):
    url = databases.empty()
    migrate.upgrade(url, "0003")
    now = utcnow()

    def sub(sub_id, deleted):
        return {"id": sub_id, "owner": "key_x", "url": "http://127.0.0.1:9/", "event_types": ["*"],
                "headers": {}, "description": "", "secrets": [], "enabled": not deleted,
                "created_at": now, "updated_at": now, "deleted_at": now if deleted else None}

    def dlv(dlv_id, sub_id, status):
        return {"id": dlv_id, "event_id": "evt_x", "event_type": "a.b", "subscription_id": sub_id,
                "status": status, "attempts": 1, "retry_base": 0, "next_trigger": "scheduled",
                "next_attempt_at": now if status == "pending" else None,
                "created_at": now, "updated_at": now}

    async def fill() -> None:
        db = open_database(Settings(database_url=url))
        try:
            async with db.engine.begin() as conn:
                # The tables as at 0003: no column of a later revision.
                old = sa.MetaData()
                await conn.run_sync(old.reflect)
                await conn.execute(sa.insert(old.tables["subscription"]),
                                   [sub("sub_gone", True), sub("sub_live", False)])
                await conn.execute(sa.insert(old.tables["delivery"]), [
                    dlv("dlv_1", "sub_gone", "pending"), dlv("dlv_2", "sub_gone", "held"),
                    dlv("dlv_3", "sub_gone", "failed"), dlv("dlv_4", "sub_live", "pending")])
        finally:
            await db.dispose()

    try:
        asyncio.run(fill())
        migrate.upgrade(url)
        found = {r.id: r.status for r in rows(url, "SELECT id, status FROM delivery")}
        assert found == {"dlv_1": "cancelled", "dlv_2": "cancelled", "dlv_3": "failed",
                         "dlv_4": "pending"}
        assert scalar(url, "SELECT count(*) FROM delivery WHERE status = 'cancelled' "
                      "AND next_attempt_at IS NOT NULL") == 0
    finally:
        databases.drop(url)

