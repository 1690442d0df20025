"""The tenant queries' plans, for docs/indexes.md: re-run with

    .venv/bin/python -m benchmarks.explain_tenants [--engines sqlite,postgresql]
                                                    [--tenants 100000] [--events 100000]

Per engine, a fresh migrated database is filled directly (``benchmarks/bulk.py``): the
tenants with 3 subscriptions each and 3 of no tenant (``tenants.fill``), a scoped subscriber
key for one tenant in ten, and events with 3 deliveries each: 90 % for a tenant drawn with a
skew (``tenants * u**3``: tenant-0 is the busiest, most have one event or none), 10 % of no
tenant; deliveries 90 % succeeded, 6 % failed, 4 % pending. On PostgreSQL then VACUUM
ANALYZE (autovacuum would); SQLite gets no ANALYZE, as dispatcher never runs one.

The SQL is what the ``Store`` methods emit: each is called and its statements captured
(``before_cursor_execute``), then run again with ``EXPLAIN QUERY PLAN`` (SQLite) or
``EXPLAIN (ANALYZE, BUFFERS)`` (PostgreSQL, after one warm-up run; writes in a transaction
that is rolled back). Writes (replay, tenant deletion) are captured on one tenant and
explained on another of the same size (the first is changed by the capture). It prints
markdown: each query's plan. ``--with SQL`` (repeatable) runs SQL after the fill, e.g. a
``CREATE INDEX`` to try (then ANALYZE on PostgreSQL).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import sqlalchemy as sa

from dispatcher import ids
from dispatcher.cli import run_loop
from dispatcher.clock import utcnow
from dispatcher.config import Settings
from dispatcher.database import open_database
from dispatcher.models import api_key_table, delivery_table, event_table, subscription_table
from dispatcher.store import Store, _delivery_row, encode_payload
from dispatcher.store.fan_out import audience_query
from dispatcher.store.rows import DeliveryFilter, Scope
from dispatcher.vocabulary import DeliveryStatus

from .bulk import insert_rows
from .common import fresh_database, postgres_problem
from .tenants import fill, tenant_id

GROUP = 32  # events in one group commit: the ingest benchmark's concurrency
Captured = list[tuple[str, Any]]


def _skewed(rng: random.Random, tenants: int) -> int:
    return int(tenants * rng.random() ** 3)


async def _subscriptions_by_tenant(store: Store) -> dict[str | None, list[str]]:
    s = subscription_table
    out: dict[str | None, list[str]] = {}
    async with store.engine.connect() as conn:
        for sub_id, tid in await conn.execute(sa.select(s.c.id, s.c.tenant_id)):
            out.setdefault(tid, []).append(sub_id)
    return out


def _history(subs: dict[str | None, list[str]], tenants: int, events: int, publisher: str
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(14)
    event_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    for j in range(events):
        tid = None if rng.random() < 0.1 else tenant_id(_skewed(rng, tenants))
        now = utcnow()
        event = {"id": ids.new_id("evt"), "type": "order.paid", "publisher": publisher,
                 "payload": encode_payload("order.paid", now, {"j": j}), "tenant_id": tid,
                 "broadcast": False, "idempotency_key": None, "created_at": now}
        event_rows.append(event)
        for sub_id in subs[tid]:
            row = _delivery_row(event["id"], "order.paid", sub_id, True, now, "scheduled", tid)
            draw = rng.random()
            if draw < 0.90:
                row |= {"status": DeliveryStatus.SUCCEEDED.value, "attempts": 1,
                        "next_attempt_at": None}
            elif draw < 0.96:
                row |= {"status": DeliveryStatus.FAILED.value, "attempts": 8,
                        "next_attempt_at": None}
            delivery_rows.append(row)
    return event_rows, delivery_rows


def _keys(tenants: int) -> Iterator[dict[str, Any]]:
    now = utcnow()
    for i in range(0, tenants, 10):
        yield {"id": ids.new_id("key"), "role": "subscriber", "name": f"tenant {i}",
               "key_hash": hashlib.sha256(f"bench-{i}".encode()).hexdigest(),
               "tenant_id": tenant_id(i), "created_at": now, "deleted_at": None}


async def _capture(store: Store, call: Callable[[], Awaitable[Any]]) -> Captured:
    seen: Captured = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    engine = store.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        await call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
    return [(q, p) for q, p in seen if not q.lstrip().upper().startswith(
        ("BEGIN", "COMMIT", "ROLLBACK", "SELECT PG_NOTIFY", "NOTIFY", "PRAGMA"))]


def _swap(parameters: Any, old: str, new: str) -> Any:
    if isinstance(parameters, dict):
        return {k: new if v == old else v for k, v in parameters.items()}
    return type(parameters)(new if v == old else v for v in parameters)


async def _explain(store: Store, sqlite: bool, statement: str, parameters: Any) -> str:
    writes = statement.lstrip().upper().startswith(("UPDATE", "DELETE", "INSERT"))
    async with store.engine.connect() as conn:
        if sqlite:
            rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                               parameters)).all()
            depth: dict[int, int] = {0: 0}
            lines = []
            for node, parent, _unused, detail in rows:
                depth[node] = depth.get(parent, 0) + 1
                lines.append("  " * (depth[node] - 1) + detail)
            return "\n".join(lines)
        trans = await conn.begin()
        try:
            if not writes:
                await conn.exec_driver_sql(statement, parameters)  # warm-up
            rows = (await conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)).all()
        finally:
            await trans.rollback()
    return "\n".join(r[0] for r in rows if not r[0].lstrip().startswith("Planning:"))


async def explain_all(engine: str, tenants: int, events: int, extra: list[str]) -> str:
    out: list[str] = []
    async with fresh_database(engine) as database_url:
        await fill(database_url, tenants)
        db = open_database(Settings(database_url=database_url))
        store = Store(db)
        try:
            publisher = (await store.create_key("publisher", "bench"))["id"]
            subs = await _subscriptions_by_tenant(store)
            event_rows, delivery_rows = _history(subs, tenants, events, publisher)
            await insert_rows(database_url, [(event_table, event_rows),
                                             (delivery_table, delivery_rows),
                                             (api_key_table, _keys(tenants))])
            async with store.writer.begin() as conn:
                for statement in extra:
                    await conn.exec_driver_sql(statement)
                if extra and engine == "postgresql":
                    await conn.exec_driver_sql("ANALYZE delivery")
            # New connections: the planner's statistics of the filled tables.
            await db.dispose()
            db = open_database(Settings(database_url=database_url))
            store = Store(db)
            out.append(await _volumes(store, engine))
            rng = random.Random(7)
            group = [{"tenant_id": tenant_id(rng.randrange(tenants)), "broadcast": False}
                     for _ in range(GROUP)]
            plain = [{"tenant_id": None, "broadcast": False}] * GROUP
            busy, typical = tenant_id(0), tenant_id(tenants // 2)
            scoped = Scope("key_bench", busy)
            failed = DeliveryStatus.FAILED.value

            async def read(query: tuple[sa.Select[Any], dict[str, Any]]) -> None:
                async with store.engine.connect() as conn:
                    (await conn.execute(*query)).all()

            cases: list[tuple[str, Callable[[], Awaitable[Any]], tuple[str, str] | None]] = [
                (f"fan-out read, a group of {GROUP} tenant events (`audience_query`)",
                 lambda: read(audience_query(group)), None),
                (f"fan-out read, a group of {GROUP} tenant-less events",
                 lambda: read(audience_query(plain)), None),
                ("deliveries ?tenant_id= (busiest tenant), newest first",
                 lambda: store.list_deliveries(None, tenant_id=busy, limit=50), None),
                ("deliveries ?tenant_id= (a typical tenant), newest first",
                 lambda: store.list_deliveries(None, tenant_id=typical, limit=50), None),
                ("deliveries ?tenant_id=&status=failed (busiest tenant)",
                 lambda: store.list_deliveries(None, tenant_id=busy, status=failed,
                                               limit=50), None),
                ("a scoped key's deliveries (busiest tenant)",
                 lambda: store.list_deliveries(scoped, limit=50), None),
                ("subscriptions ?tenant_id=",
                 lambda: store.list_subscriptions(None, None, 50, "desc", tenant_id=busy), None),
                ("a scoped key's subscriptions",
                 lambda: store.list_subscriptions(scoped, None, 50, "desc"), None),
                ("events ?tenant_id= (busiest tenant)",
                 lambda: store.list_events(None, None, None, None, None, 50, "desc",
                                           tenant_id=busy), None),
                ("api-keys ?tenant_id=",
                 lambda: store.list_keys(None, 50, "desc", tenant_id=busy), None),
                ("tenants list, first page", lambda: store.list_tenants(None, 50, "desc"), None),
                ("tenants list, a later page (cursor)",
                 lambda: store.list_tenants(tenant_id(tenants // 2), 50, "desc"), None),
                ("replay ?tenant_id= (failed; select of a batch, then the update)",
                 lambda: store.replay(DeliveryFilter(tenant_id=tenant_id(1))),
                 (tenant_id(1), tenant_id(2))),
                ("delete a tenant: tenant, subscriptions, open deliveries, keys",
                 lambda: store.delete_tenant(tenant_id(10)), (tenant_id(10), tenant_id(20))),
            ]
            for title, call, swap in cases:
                captured = await _capture(store, call)
                out.append(f"### {title}\n")
                for statement, parameters in captured:
                    if swap is not None:
                        parameters = _swap(parameters, *swap)
                    plan = await _explain(store, engine == "sqlite", statement, parameters)
                    shown = " ".join(statement.split())
                    out.append(f"```sql\n{shown[:600]}{' …' if len(shown) > 600 else ''}\n"
                               f"-- {parameters!r:.200}\n```\n```\n{plan}\n```\n")
        finally:
            await db.dispose()
    return "\n".join(out)


async def _volumes(store: Store, engine: str) -> str:
    counts = []
    async with store.engine.connect() as conn:
        for table in ("tenant", "subscription", "api_key", "event", "delivery"):
            n = await conn.scalar(sa.text(f"SELECT count(*) FROM {table}"))  # noqa: S608
            counts.append(f"{table} {n:,}")
        d = delivery_table
        busiest = await conn.scalar(sa.select(sa.func.count()).select_from(d).where(
            d.c.tenant_id == tenant_id(0)))
        typical = await conn.scalar(sa.select(sa.func.count()).select_from(d).where(
            d.c.tenant_id == tenant_id(50_000)))
    return (f"## {engine}\n\nRows: {', '.join(counts)}; deliveries of the busiest tenant "
            f"(tenant-0) {busiest:,}, of tenant-50000 {typical:,}.\n")


async def main_async(engines: list[str], tenants: int, events: int, extra: list[str]) -> str:
    parts = []
    for engine in engines:
        if engine == "postgresql" and (problem := await postgres_problem()):
            parts.append(f"## postgresql\n\nSKIPPED: {problem}\n")
            continue
        parts.append(await explain_all(engine, tenants, events, extra))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain_tenants",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--with", dest="extra", action="append", default=[],
                        help="SQL to run after the fill (an index to try); repeatable")
    args = parser.parse_args(argv)
    print(run_loop(main_async(args.engines.split(","), args.tenants, args.events,
                              args.extra)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
