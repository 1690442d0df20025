"""The delivery core without FastAPI: store + worker + the shared client, driven directly."""

from __future__ import annotations

import asyncio
import sys

from dispatcher.database import make_engine
from dispatcher.store import Store
from dispatcher.transport import make_http_client
from dispatcher.worker import Worker

from .harness import Receiver, Reply


async def _run(settings, receiver_url: str, events: int) -> Store:
    store = Store(make_engine(settings))
    client = make_http_client(settings)
    sub = await store.create_subscription("key_test", {"url": receiver_url})
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
    return store


def test_worker_delivers_without_the_api(make_settings):
    settings = make_settings(worker_concurrency=8, claim_batch_size=4)
    with Receiver(lambda n, r: Reply(500 if n % 3 == 0 else 200)) as receiver:
        store = asyncio.run(_run(settings, receiver.url, 30))
        assert len(set(receiver.ids())) == 30
    assert "fastapi" not in {m.split(".")[0] for m in _core_imports()}
    del store


def _core_imports() -> set[str]:
    # The core modules, imported in a clean interpreter, must not pull in FastAPI.
    import subprocess

    code = ("import sys, dispatcher.worker, dispatcher.sender, dispatcher.store; "
            "print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return set(out.split())


def test_an_attempt_that_cannot_even_be_sent_is_recorded_not_stuck(make_settings):
    # Headers the API would refuse (not ASCII) can still be in an old row: the attempt must
    # be recorded as failed, never leave the delivery leased with no attempt.
    settings = make_settings(retry_schedule=(), http_transport="httpx")

    async def scenario() -> list[dict]:
        store = Store(make_engine(settings))
        client = make_http_client(settings)
        sub = await store.create_subscription(
            "key_test", {"url": "http://127.0.0.1:9/x", "headers": {"x-team": "équipe"}})
        await store.accept_event("key_test", "a.b", {}, None, 60)
        worker = Worker(store, client, settings)
        task = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(10):
                while True:
                    page = await store.list_deliveries(None, subscription_id=sub["id"])
                    if page.rows and page.rows[0]["status"] == "failed":
                        break
                    await asyncio.sleep(0.05)
        finally:
            worker.stop()
            await task
            await client.aclose()
        return (await store.list_attempts(page.rows[0]["id"], None, None, 10, "asc")).rows

    [attempt] = asyncio.run(scenario())
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("the request could not be sent")
