"""How fast dispatcher accepts events, next to a FastAPI endpoint that stores nothing.

    .venv/bin/python -m benchmarks.run --only ingest [--quick] [--engines sqlite,postgresql]

One load generator (``benchmarks/load.py``: aiohttp, a process of its own, a warm-up of C
requests, then N timed requests by C tasks; every answer must be 202) against:

- ``bare-fastapi``: ``benchmarks/bare_app.py``, one route that validates the body with the
  real ``EventIn`` model and answers 202 without storing anything, served by uvicorn as
  ``dispatcher api`` is served;
- ``dispatcher-ingest (<engine>)``: ``dispatcher api`` on a fresh migrated database with a
  publisher key and 10 subscriptions (made through the HTTP API with the admin token), each
  event fanning out to all 10. Only the API runs: ingest is measured alone, no delivery
  worker competes for the CPU or the database (the subscriptions point at 127.0.0.1, and
  nothing is delivered). Afterwards the API process is killed (SIGKILL) and the database
  must hold every accepted event, warm-up included, each with its 10 deliveries: what was
  answered 202 was committed before the answer.

- ``dispatcher-ingest-keyed (<engine>)``: the same with a unique ``Idempotency-Key`` on every
  event (the key is looked up and claimed inside the group commit).

The figures that matter are the ratios ``dispatcher-ingest / bare-fastapi`` within one run
(issue 6's target: at least 0.5) and ``dispatcher-ingest-keyed / dispatcher-ingest`` (issue
16's: at least 0.8), which ``benchmarks/report.py`` computes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher.models import delivery_table, event_table

from .bare_app import BareApp
from .common import (
    ADMIN_TOKEN,
    DispatcherProcess,
    Result,
    deadline_for,
    fresh_database,
)
from .load import run_load

SUBSCRIPTIONS = 10
EVENT_TYPE = "bench.ingest"
# A small, realistic event; {i} is the request number (load.py), so every event differs.
BODY = ('{"type": "' + EVENT_TYPE + '", "data": {"order_id": "ord_{i}", "amount": 4200, '
        '"currency": "EUR", "customer": {"id": "cus_17", "email": "a@example.com"}}}')


def _result(name: str, found: dict[str, Any]) -> Result:
    extra = {k: found[k] for k in ("p50_ms", "p99_ms", "max_ms", "warmup", "statuses")}
    return Result(name, found["n"], found["concurrency"], found["seconds"], extra)


async def bare_fastapi(n: int, c: int) -> Result:
    """N events posted to the bare FastAPI endpoint, C at a time."""
    bare = BareApp()
    url = await asyncio.to_thread(bare.__enter__)
    try:
        found = await run_load(url, n, c, body=BODY, deadline=deadline_for(n))
    finally:
        await asyncio.to_thread(bare.__exit__)
    return _result("bare-fastapi", found)


async def dispatcher_ingest(engine: str, n: int, c: int, keyed: bool = False) -> Result:
    """N events posted to ``dispatcher api`` on ``engine``, C at a time, each fanning out to
    10 subscriptions; then the proof that all of them were committed. ``keyed``: each with
    an ``Idempotency-Key`` of its own, as careful publishers send (``dispatcher-ingest-keyed``)."""
    async with fresh_database(engine) as database_url:
        api = DispatcherProcess("api", database_url)
        await asyncio.to_thread(api.__enter__)
        try:
            key = await _set_up(api.url)
            found = await run_load(
                api.url + "/v1/events", n, c, body=BODY, deadline=deadline_for(n),
                headers={"authorization": f"Bearer {key}"}
                | ({"idempotency-key": "bench-{i}"} if keyed else {}))
            # Killed at once, no shutdown: only what was committed is in the database.
            api.process.kill()  # type: ignore[union-attr]
            await asyncio.to_thread(api.process.wait, 30)  # type: ignore[union-attr]
        finally:
            await asyncio.to_thread(api.__exit__)
        sample = json.loads(found["sample"])
        if sample.get("deliveries") != SUBSCRIPTIONS:
            raise RuntimeError(f"an event fanned out to {sample.get('deliveries')} "
                               f"subscriptions, not {SUBSCRIPTIONS}: {found['sample']}")
        await check_stored(database_url, n + found["warmup"])
    name = "dispatcher-ingest-keyed" if keyed else "dispatcher-ingest"
    return _result(f"{name} ({engine})", found)


async def _set_up(url: str) -> str:
    """A publisher key and the subscriptions, through the API as the admin; the key."""
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=admin, timeout=30) as client:
        made = await client.post("/v1/api-keys", json={"role": "publisher", "name": "bench"})
        made.raise_for_status()
        for i in range(SUBSCRIPTIONS):
            # Never called: no worker runs. A closed port on 127.0.0.1 all the same.
            answer = await client.post("/v1/subscriptions", json={
                "url": f"http://127.0.0.1:9/hook/{i}", "event_types": ["bench.*"]})
            answer.raise_for_status()
    return made.json()["key"]


async def check_stored(database_url: str, events: int) -> None:
    """Exactly ``events`` events, each with its ``SUBSCRIPTIONS`` pending deliveries."""
    e, d = event_table, delivery_table
    per_event = (sa.select(d.c.event_id).group_by(d.c.event_id)
                 .having(sa.func.count() != SUBSCRIPTIONS).subquery())
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored = await conn.scalar(sa.select(sa.func.count()).select_from(e))
            deliveries = await conn.scalar(
                sa.select(sa.func.count()).select_from(d).where(d.c.status == "pending"))
            uneven = await conn.scalar(sa.select(sa.func.count()).select_from(per_event))
    finally:
        await engine.dispose()
    if stored != events or deliveries != events * SUBSCRIPTIONS or uneven:
        raise RuntimeError(
            f"accepted {events} events with {SUBSCRIPTIONS} deliveries each, but the database "
            f"holds {stored} events and {deliveries} pending deliveries ({uneven} events "
            f"without exactly {SUBSCRIPTIONS})")
