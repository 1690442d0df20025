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
