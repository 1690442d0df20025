"""PostgreSQL: a worker's pool pings a connection that sat idle before handing it out (and
not one in steady use): a connection the server dropped while it was idle is replaced,
unseen. A process that answers requests pings every one (tests/test_scale.py terminates
the backends under a running API)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher import database
from dispatcher.database import open_database

from .databases import run_async

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)

BACKEND = sa.text("SELECT pg_backend_pid()")


async def _backend_then_dropped(db: database.Database) -> int:
    """A pooled connection's server process, ended from a connection outside the pool."""
    async with db.engine.connect() as conn:
        pid = await conn.scalar(BACKEND)
    other = create_async_engine(db.settings.database_url, poolclass=sa.pool.NullPool)
    try:
        async with other.connect() as killer:
            await killer.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    finally:
        await other.dispose()
    return pid


@pytest.mark.parametrize("idle_for, replaced", [(0.0, True), (3600.0, False)])
def test_a_connection_dropped_while_idle(settings, monkeypatch, idle_for, replaced):
    """With the idle threshold at 0 s, any connection that sat in the pool is pinged first;
    at an hour, none is, and the dropped one fails its first statement."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", idle_for)

    async def run() -> None:
        db = open_database(settings.model_copy(update={"db_pool_size": 1,
                                                        "db_max_overflow": 1}),
                           serves_requests=False)
        try:
            dropped = await _backend_then_dropped(db)
            if replaced:
                async with db.engine.connect() as conn:
                    assert await conn.scalar(BACKEND) != dropped
            else:
                with pytest.raises(sa.exc.DBAPIError) as failed:
                    async with db.engine.connect() as conn:
                        await conn.scalar(BACKEND)
                assert failed.value.connection_invalidated
                # The next use connects afresh.
                async with db.engine.connect() as conn:
                    assert await conn.scalar(BACKEND) != dropped
        finally:
            await db.dispose()

    run_async(run())


def test_a_process_that_answers_requests_pings_every_connection(settings, monkeypatch):
    """However recently a connection was used, a request never meets it dead."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600.0)

    async def run() -> None:
        db = open_database(settings.model_copy(update={"db_pool_size": 1,
                                                        "db_max_overflow": 1}))
        try:
            dropped = await _backend_then_dropped(db)
            async with db.engine.connect() as conn:
                assert await conn.scalar(BACKEND) != dropped
        finally:
            await db.dispose()

    run_async(run())
