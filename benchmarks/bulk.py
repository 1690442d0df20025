"""The scenarios' data: subscriptions through the store, and a backlog loaded in bulk.

``make_subscriptions`` goes through ``Store.create_subscription`` (real rows), with a few
calls in flight at once.

``load_backlog`` writes pending, due deliveries and their events as ``Store.accept_event``
writes them: events made with ``encode_payload``, deliveries made by the store's own
``_delivery_row`` (ids from ``dispatcher.ids.new_id``, ``created_at = updated_at =
next_attempt_at`` = the event's time), each value converted by the column's own SQLAlchemy
type for the engine (SQLite keeps times as zone-less text), so a loaded row cannot be told
from one the API wrote. Only the path differs, to load a million in seconds rather than
minutes: on SQLite one ``executemany`` in one transaction through the standard ``sqlite3``
module, on PostgreSQL ``COPY`` through asyncpg's ``copy_records_to_table``.

``load_failed_once`` writes deliveries waiting for their first retry, with that first attempt
(a retry storm); ``insert_rows`` any rows of any tables, bound the same way.
"""

from __future__ import annotations

import asyncio
import functools
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from dispatcher import ids
from dispatcher.clock import utcnow
from dispatcher.config import Settings
from dispatcher.database import open_database
from dispatcher.models import UTCDateTime, attempt_table, delivery_table, event_table
from dispatcher.store import Store, _delivery_row, encode_payload
from dispatcher.vocabulary import AttemptOutcome, Trigger

from .common import deadline_for

EVENT_TYPE = "bench.backlog"
Batch = tuple[dict[str, Any], list[dict[str, Any]]]


async def make_subscriptions(database_url: str, urls: Sequence[str], event_types: list[str],
                             concurrency: int = 8,
                             filters: Sequence[dict[str, Any]] | None = None,
                             ) -> tuple[str, list[str]]:
    """One subscription per URL through ``Store.create_subscription`` (real rows; no
    per-owner cap), owned by a new subscriber key, with ``filters[i]`` as the i-th one's
    filter; (the key's id, the subscriptions' ids)."""
    db = open_database(Settings(database_url=database_url))
    store = Store(db)
    try:
        owner = (await store.create_key("subscriber", "bench"))["id"]
        made: dict[int, str] = {}
        numbered = iter(enumerate(urls))

        async def create() -> None:
            for i, url in numbered:  # shared: each URL is taken by exactly one task
                row = await store.create_subscription(owner, {
                    "url": url, "event_types": event_types,
                    "filter": None if filters is None else filters[i]})
                made[i] = row["id"]

        async with asyncio.timeout(deadline_for(len(urls))):
            await asyncio.gather(*(create() for _ in range(concurrency)))
        return owner, [made[i] for i in range(len(urls))]
    finally:
        await db.dispose()


def backlog_rows(publisher: str, subscription_ids: Sequence[str], total: int) -> Iterator[Batch]:
    """``total`` deliveries: events one after another, each to every subscription (the last
    one to as many as are left), as ``(event row, its delivery rows)``."""
    per_event = len(subscription_ids)
    for j in range(math.ceil(total / per_event)):
        now = utcnow()
        event = {
            "id": ids.new_id("evt"),
            "type": EVENT_TYPE,
            "payload": encode_payload(EVENT_TYPE, now, {"backlog": j, "amount": 4200}),
            "publisher": publisher,
            "idempotency_key": None,
            "tenant_id": None,
            # NOT NULL: a missing column is bound as NULL here, not as its server default.
            "broadcast": False,
            "created_at": now,
        }
        chosen = subscription_ids[: min(per_event, total - j * per_event)]
        yield event, [_delivery_row(event["id"], EVENT_TYPE, sub_id, True, now, "scheduled")
                      for sub_id in chosen]


def _converter(table: sa.Table, dialect: sa.Dialect) -> Callable[[dict[str, Any]], tuple]:
    """A row dict as a tuple in column order, each value as the column's type binds it for
    ``dialect``; a missing column is NULL (the tables have no client-side defaults)."""
    names = [c.name for c in table.c]
    convert: list[tuple[int, Callable[[Any], Any]]] = []
    for i, column in enumerate(table.c):
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            if isinstance(column.type, UTCDateTime):
                # The rows of one event share their times: convert each time once.
                process = functools.lru_cache(maxsize=16)(process)
            convert.append((i, process))

    def row(values: dict[str, Any]) -> tuple:
        out = [values.get(name) for name in names]
        for i, process in convert:
            out[i] = process(out[i])
        return tuple(out)

    return row


def _bound_rows(batches: Iterator[Batch], dialect: sa.Dialect
                ) -> tuple[list[tuple], Iterator[tuple]]:
    """The delivery rows as they are made (an iterator), bound for ``dialect``; the event
    rows fill the list meanwhile, complete once the iterator is spent."""
    event_row = _converter(event_table, dialect)
    delivery_row = _converter(delivery_table, dialect)
    events: list[tuple] = []

    def deliveries() -> Iterator[tuple]:
        for event, rows in batches:
            events.append(event_row(event))
            for row in rows:
                yield delivery_row(row)

    return events, deliveries()


def _insert_sql(table: sa.Table) -> str:
    names = [c.name for c in table.c]
    return (f"INSERT INTO {table.name} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' for _ in names)})")


def _write_sqlite(path: str, fill: Callable[[sqlite3.Connection], None]) -> None:
    """``fill`` in one transaction of a connection of its own, folded into the file after."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA cache_size=-262144")  # this connection only: 256 MB
        conn.execute("BEGIN IMMEDIATE")
        try:
            fill(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # Into the database file now, not during the measurement. No ANALYZE: dispatcher
        # never runs it, so a real SQLite database has no statistics.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _load_sqlite(path: str, batches: Iterator[Batch]) -> None:
    from sqlalchemy.dialects import sqlite

    events, deliveries = _bound_rows(batches, sqlite.dialect())

    def fill(conn: sqlite3.Connection) -> None:
        conn.executemany(_insert_sql(delivery_table), deliveries)
        conn.executemany(_insert_sql(event_table), events)

    _write_sqlite(path, fill)


async def _load_postgresql(url: str, batches: Iterator[Batch]) -> float:
    import asyncpg
    from sqlalchemy.dialects.postgresql import asyncpg as pg

    events, deliveries = _bound_rows(batches, pg.dialect())
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "delivery", records=deliveries, columns=[c.name for c in delivery_table.c],
                timeout=600)
            await conn.copy_records_to_table(
                "event", records=events, columns=[c.name for c in event_table.c], timeout=60)
        # What autovacuum does on its own soon after such an insert (PostgreSQL 13+ vacuums
        # after inserts too): statistics for the planner, the visibility map for scans.
        start = time.monotonic()
        await conn.execute("VACUUM (ANALYZE) delivery, event", timeout=600)
        return time.monotonic() - start
    finally:
        await conn.close()


async def load_backlog(database_url: str, publisher: str, subscription_ids: Sequence[str],
                       total: int) -> dict[str, float]:
    """Load ``total`` pending due deliveries; the seconds it took (``load_seconds``: making
    and writing the rows, committed; on PostgreSQL also ``vacuum_analyze_seconds``)."""
    batches = backlog_rows(publisher, subscription_ids, total)
    start = time.monotonic()
    if database_url.startswith("sqlite"):
        path = make_url(database_url).database
        assert path is not None
        await asyncio.to_thread(_load_sqlite, path, batches)
        return {"load_seconds": time.monotonic() - start}
    vacuum = await _load_postgresql(database_url, batches)
    return {"load_seconds": time.monotonic() - start - vacuum,
            "vacuum_analyze_seconds": vacuum}


# ---- any tables ----------------------------------------------------------------------------

Rows = tuple[sa.Table, Iterable[dict[str, Any]]]


def _insert_sqlite(path: str, tables: Sequence[Rows]) -> None:
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()

    def fill(conn: sqlite3.Connection) -> None:
        for table, rows in tables:
            bind = _converter(table, dialect)
            conn.executemany(_insert_sql(table), (bind(r) for r in rows))

    _write_sqlite(path, fill)


async def _insert_postgresql(url: str, tables: Sequence[Rows]) -> None:
    import asyncpg
    from sqlalchemy.dialects.postgresql import asyncpg as pg

    dialect = pg.dialect()
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        async with conn.transaction():
            for table, rows in tables:
                bind = _converter(table, dialect)
                await conn.copy_records_to_table(
                    table.name, records=(bind(r) for r in rows),
                    columns=[c.name for c in table.c], timeout=600)
        # As autovacuum soon would: statistics for the planner, the visibility map.
        names = ", ".join(dict.fromkeys(table.name for table, _ in tables))
        await conn.execute(f"VACUUM (ANALYZE) {names}", timeout=600)
    finally:
        await conn.close()


async def insert_rows(database_url: str, tables: Sequence[Rows]) -> float:
    """Rows (dicts of column values, a missing column NULL) into each table in order, in one
    transaction, bound as ``load_backlog``'s are; on PostgreSQL then VACUUM ANALYZE (as
    autovacuum would soon; SQLite gets no statistics, as in use). The seconds it took."""
    start = time.monotonic()
    if database_url.startswith("sqlite"):
        path = make_url(database_url).database
        assert path is not None
        await asyncio.to_thread(_insert_sqlite, path, tables)
    else:
        await _insert_postgresql(database_url, tables)
    return time.monotonic() - start


async def load_failed_once(database_url: str, publisher: str, subscription_ids: Sequence[str],
                           total: int, first_due: datetime, spread_seconds: float,
                           status_code: int = 503) -> float:
    """``total`` deliveries whose first attempt got ``status_code`` and whose retry is due:
    pending, ``attempts`` 1, that attempt stored, their events as ``load_backlog`` makes
    them; the retries come due one after another, evenly from ``first_due`` over
    ``spread_seconds``. The seconds loading took."""
    now = utcnow()
    events: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    for event, rows in backlog_rows(publisher, subscription_ids, total):
        events.append(event)
        for row in rows:
            due = first_due + timedelta(seconds=spread_seconds * len(deliveries) / total)
            deliveries.append(row | {"attempts": 1, "next_attempt_at": due, "updated_at": now,
                                     "last_status_code": status_code})
            attempts.append({
                "id": ids.new_id("att"), "delivery_id": row["id"], "number": 1,
                "trigger": Trigger.SCHEDULED.value, "started_at": now, "duration_ms": 1,
                "status_code": status_code, "response_body": "", "error": None,
                "outcome": AttemptOutcome.FAILED.value,
            })
    return await insert_rows(database_url, [(event_table, events),
                                            (delivery_table, deliveries),
                                            (attempt_table, attempts)])
