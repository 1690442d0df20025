"""Ingest with tenants: events for one of 100,000 tenants next to events of no tenant.

    .venv/bin/python -m benchmarks.run --only tenants [--quick] [--engines sqlite,postgresql]

The done-when of issue 14: with 100,000 tenants of 3 subscriptions each, ingest of
tenant-targeted events runs at >= 0.9 x the rate of tenant-less events fanning out to 3
subscriptions, in one run. Per engine, one fresh database is filled directly
(``bulk.insert_rows``, seconds): the tenants, 3 enabled subscriptions each (copies of a row
that ``Store.create_subscription`` made, new ids, their tenant set) and 3 subscriptions of no
tenant; on PostgreSQL then VACUUM ANALYZE, as autovacuum would soon do (SQLite gets no
statistics: dispatcher never runs ANALYZE).

Against one running ``dispatcher api`` on defaults, ``load.py`` (N events, C at a time, after
a warm-up of C) alternates, for R rounds:

- ``tenant-less-ingest``: events without ``tenant_id``, each fanning out to the 3 subscriptions
  of no tenant;
- ``tenant-ingest``: events each for a tenant drawn at random among all of them (``{r}``,
  seeded, a new draw each round), each fanning out to that tenant's 3.

Each row's figure is its median round (R is odd), so that the machine's noise hits both
alike; ``benchmarks/report.py`` sets the target ``tenant-ingest / tenant-less-ingest >= 0.9``.

Delivery is kept out of it as in ``ingest.py``: only ``dispatcher api`` runs (on SQLite too,
where ``dispatcher serve`` would also run a worker), no worker competes for the CPU or the
database, and the subscriptions point at a closed port on 127.0.0.1, never called. Afterwards
the API is killed (SIGKILL) and the database must hold every accepted event, warm-ups
included, each with exactly 3 pending deliveries, all of its own tenant (or of none).
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher import ids
from dispatcher.clock import utcnow
from dispatcher.config import Settings
from dispatcher.database import open_database
from dispatcher.models import delivery_table, event_table, subscription_table, tenant_table
from dispatcher.store import Store

from .bulk import insert_rows
from .common import ADMIN_TOKEN, DispatcherProcess, Result, deadline_for, fresh_database
from .load import run_load
from .scenarios import off_loop

PER_TENANT = 3
EVENT_TYPE = "bench.tenant"
NOWHERE = "http://127.0.0.1:9/hook"  # a closed port: no worker runs, nothing is called
_DATA = ('"data": {"order_id": "ord_{i}", "amount": 4200, "currency": "EUR", '
         '"customer": {"id": "cus_17", "email": "a@example.com"}}}')
PLAIN = '{"type": "' + EVENT_TYPE + '", ' + _DATA
FOR_TENANT = '{"type": "' + EVENT_TYPE + '", "tenant_id": "tenant-{r}", ' + _DATA


def tenant_id(i: int) -> str:
    """The id of tenant number ``i``: what ``FOR_TENANT`` names with ``{r}``."""
    return f"tenant-{i}"


async def fill(database_url: str, tenants: int, per_tenant: int = PER_TENANT,
               url: str = NOWHERE) -> dict[str, Any]:
    """``tenants`` tenants with ``per_tenant`` subscriptions each, and ``per_tenant`` of no
    tenant, all enabled, taking ``bench.*``; what was made and the seconds it took."""
    db = open_database(Settings(database_url=database_url))
    store = Store(db)
    s = subscription_table
    try:
        owner = (await store.create_key("subscriber", "bench"))["id"]
        plain = [await store.create_subscription(owner, {"url": url, "event_types": ["bench.*"]})
                 for _ in range(per_tenant)]
        async with db.engine.connect() as conn:
            template = dict((await conn.execute(
                sa.select(s).where(s.c.id == plain[0]["id"]))).one()._mapping)
    finally:
        await db.dispose()
    now = utcnow()

    def tenant_rows() -> Iterator[dict[str, Any]]:
        for i in range(tenants):
            # One millisecond apart, oldest first: the list's order is (created_at, id).
            at = now - timedelta(milliseconds=tenants - i)
            yield {"id": tenant_id(i), "name": f"Tenant {i}", "metadata": {"plan": "pro"},
                   "created_at": at, "updated_at": at}

    def subscription_rows() -> Iterator[dict[str, Any]]:
        for i in range(tenants):
            for _ in range(per_tenant):
                yield template | {"id": ids.new_id("sub"), "tenant_id": tenant_id(i)}

    seconds = await insert_rows(database_url, [(tenant_table, tenant_rows()),
                                               (s, subscription_rows())])
    return {"tenants": tenants, "subscriptions": tenants * per_tenant + per_tenant,
            "fill_seconds": round(seconds, 2)}


async def tenant_ingest(engine: str, tenants: int, n: int, c: int, rounds: int
                        ) -> list[Result]:
    """The two rows, ``tenant-less-ingest (engine)`` and ``tenant-ingest (engine)``: N
    events per round at concurrency C, R alternating rounds of each, on one database of
    ``tenants`` tenants; each row's seconds are its median round's."""
    if rounds < 1 or rounds % 2 == 0:
        raise ValueError("rounds must be odd, so that the median is a round's figure")
    seconds: dict[str, list[float]] = {"plain": [], "tenant": []}
    warmups = 0
    async with fresh_database(engine) as database_url:
        filled = await fill(database_url, tenants)
        api = DispatcherProcess("api", database_url)
        async with off_loop(api):
            key = await _publisher_key(api.url)
            headers = {"authorization": f"Bearer {key}"}
            for r in range(rounds):
                for kind, body in (("plain", PLAIN), ("tenant", FOR_TENANT)):
                    found = await run_load(api.url + "/v1/events", n, c, body=body,
                                           headers=headers, deadline=deadline_for(n),
                                           pick=tenants, seed=r)
                    if f'"deliveries":{PER_TENANT}' not in found["sample"].replace(" ", ""):
                        raise RuntimeError(f"a {kind} event did not fan out to {PER_TENANT} "
                                           f"subscriptions: {found['sample']}")
                    seconds[kind].append(found["seconds"])
                    warmups += found["warmup"]
            # Killed at once, no shutdown: only what was committed is in the database.
            api.process.kill()  # type: ignore[union-attr]
            await asyncio.to_thread(api.process.wait, 30)  # type: ignore[union-attr]
        await check_stored(database_url, rounds * n + warmups // 2)
    plain, tenant = (statistics.median(seconds[k]) for k in ("plain", "tenant"))
    per_round = [p / t for p, t in zip(seconds["plain"], seconds["tenant"], strict=True)]
    common = {"rounds": rounds, **filled}
    return [
        Result(f"tenant-less-ingest ({engine})", n, c, plain, {
            **common, "round_rates": [round(n / s) for s in seconds["plain"]]}),
        Result(f"tenant-ingest ({engine})", n, c, tenant, {
            **common, "round_rates": [round(n / s) for s in seconds["tenant"]],
            "vs_tenant_less": round(plain / tenant, 3),
            "median_round_ratio": round(statistics.median(per_round), 3)}),
    ]


async def _publisher_key(url: str) -> str:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=admin, timeout=30) as client:
        made = await client.post("/v1/api-keys", json={"role": "publisher", "name": "bench"})
        made.raise_for_status()
    return str(made.json()["key"])


async def check_stored(database_url: str, per_kind: int) -> None:
    """``per_kind`` events of each kind, each with exactly ``PER_TENANT`` pending
    deliveries, every one of its event's tenant (or of none)."""
    e, d = event_table, delivery_table
    count = sa.select(sa.func.count())
    uneven = (sa.select(d.c.event_id).group_by(d.c.event_id)
              .having(sa.func.count() != PER_TENANT).subquery())
    queries = {
        "plain events": count.select_from(e).where(e.c.tenant_id.is_(None)),
        "tenant events": count.select_from(e).where(e.c.tenant_id.is_not(None)),
        "plain deliveries": count.select_from(d).where(
            d.c.tenant_id.is_(None), d.c.status == "pending"),
        "tenant deliveries": count.select_from(d).where(
            d.c.tenant_id.is_not(None), d.c.status == "pending"),
        "uneven events": count.select_from(uneven),
        "deliveries of another tenant": count.select_from(
            d.join(e, e.c.id == d.c.event_id)).where(
            sa.func.coalesce(d.c.tenant_id, "") != sa.func.coalesce(e.c.tenant_id, "")),
    }
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = {name: await conn.scalar(q) for name, q in queries.items()}
    finally:
        await engine.dispose()
    wanted = {"plain events": per_kind, "tenant events": per_kind,
              "plain deliveries": PER_TENANT * per_kind,
              "tenant deliveries": PER_TENANT * per_kind,
              "uneven events": 0, "deliveries of another tenant": 0}
    if found != wanted:
        raise RuntimeError(f"the database holds {found}, not {wanted}")
