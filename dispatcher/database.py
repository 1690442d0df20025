"""The engine, and everything that differs between SQLite and PostgreSQL.

The rest of the code does not look at the dialect: it asks this module for an engine, for
the claim statement and for a wake-up channel.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .config import Settings
from .models import delivery_table

IMMEDIATE = "dispatcher_immediate"  # execution option: a write transaction


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    if not is_sqlite(url):
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})
    synchronous = settings.sqlite_synchronous

    @sa_event.listens_for(engine.sync_engine, "connect")
    def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are begun by hand below, so that writers can take the lock up front.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa_event.listens_for(engine.sync_engine, "begin")
    def _sqlite_begin(conn: sa.Connection) -> None:
        # A deferred transaction that reads then writes can fail with SQLITE_BUSY at once
        # (no busy wait for a lock upgrade); writers start with BEGIN IMMEDIATE instead.
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine, for transactions that write."""
    return engine.execution_options(**{IMMEDIATE: True})


def claim_statement(
    dialect_name: str, now: datetime, lease_until: datetime, owner: str, limit: int
) -> sa.Update:
    """One statement: lease up to ``limit`` due deliveries and return their ids.

    SQLite has one writer at a time, so the sub-select and update are atomic already;
    PostgreSQL skips rows another worker is claiming at the same instant.
    """
    d = delivery_table
    due = (
        sa.select(d.c.id)
        .where(
            d.c.status == "pending",
            d.c.next_attempt_at <= now,
            sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now),
        )
        .order_by(d.c.next_attempt_at)
        .limit(limit)
    )
    if dialect_name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return (
        sa.update(d)
        .where(d.c.id.in_(due.scalar_subquery()))
        .values(lease_until=lease_until, lease_owner=owner)
        .returning(d.c.id)
    )


class Wakeup:
    """Tells idle workers in this process that new deliveries are due.

    On SQLite the API and the workers share a process (``dispatcher serve``), so an
    in-process event is enough; workers elsewhere fall back to polling.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            pass
        self._event.clear()
