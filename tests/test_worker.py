"""The delivery core without FastAPI: store + worker + the shared client, driven directly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from dispatcher.database import open_database
from dispatcher.store import Store
from dispatcher.transport import make_http_client
from dispatcher.worker import Worker

from .harness import Receiver, Reply


async def deliver_all(settings, subscription: dict[str, Any], events: int) -> list[dict]:
    """Store ``events`` events for one subscription, run a worker until none is pending."""
    store = Store(open_database(settings))
    client = make_http_client(settings)
    sub = await store.create_subscription("key_test", subscription)
    for i in range(events):
        await store.accept_event("key_test", "thing.happened", {"i": i}, None, 60)
    worker = Worker(store, client, settings)
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(20):
            while True:
                page = await store.list_deliveries(None, subscription_id=sub["id"], limit=500)
                if sum(d["status"] != "pending" for d in page.rows) == events:
                    break
                await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await task
        await client.aclose()
    attempts = []
    for delivery in page.rows:
        attempts += (await store.list_attempts(delivery["id"], None, None, 100, "asc")).rows
    await store.db.dispose()
    return attempts


def test_worker_delivers_without_the_api(make_settings):
    settings = make_settings(worker_concurrency=8, claim_batch_size=4)
    seen: set[str] = set()

    def first_try_fails(n: int, request) -> Reply:
        event_id = request.headers["webhook-id"]
        fresh = event_id not in seen
        seen.add(event_id)
        return Reply(500 if fresh and n % 2 else 200)

    with Receiver(first_try_fails) as receiver:
        attempts = asyncio.run(deliver_all(settings, {"url": receiver.url}, 30))
        assert len(set(receiver.ids())) == 30
    assert len(attempts) == receiver.count() > 30
    assert sum(a["outcome"] == "succeeded" for a in attempts) == 30


def test_the_delivery_core_does_not_import_fastapi():
    code = ("import sys, dispatcher.worker, dispatcher.sender, dispatcher.store, "
            "dispatcher.service; print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "fastapi" not in {m.split(".")[0] for m in out.split()}


def test_an_attempt_that_cannot_even_be_sent_is_recorded_not_stuck(make_settings):
    # Headers the API would refuse (not ASCII) can still be in an old row: the attempt must
    # be recorded as failed, never leave the delivery leased with no attempt.
    settings = make_settings(retry_schedule=(), http_transport="httpx")
    sub = {"url": "http://127.0.0.1:9/x", "headers": {"x-team": "équipe"}}
    [attempt] = asyncio.run(deliver_all(settings, sub, 1))
    assert attempt["status_code"] is None and attempt["outcome"] == "failed"
    assert attempt["error"].startswith("the request could not be sent")


def test_recording_the_same_batch_twice_changes_nothing(make_settings, database_url):
    # A commit whose answer is lost with the connection makes the recorder write the same
    # batch again: that must neither fail nor count twice.
    from dispatcher.models import utcnow
    from dispatcher.store import AttemptRecord

    from .databases import scalar

    async def scenario() -> None:
        store = Store(open_database(make_settings()))
        try:
            await store.create_subscription("key_x", {"url": "http://127.0.0.1:9/x"})
            await store.accept_event("key_x", "a.b", {}, None, 60)
            [job] = await store.claim_due("wrk_test", 10, 60)
            record = AttemptRecord(job=job, started_at=utcnow(), duration_ms=5,
                                   status_code=200, response_body="ok", error=None,
                                   outcome="succeeded", status="succeeded",
                                   next_attempt_at=None)
            await store.record_attempts("wrk_test", [record])
            await store.record_attempts("wrk_test", [record])
        finally:
            await store.db.dispose()

    asyncio.run(scenario())
    assert scalar(database_url, "SELECT count(*) FROM attempt") == 1
    assert scalar(database_url, "SELECT attempts FROM delivery") == 1
