"""The database, and everything that differs between SQLite and PostgreSQL.

The rest of the code does not look at the dialect: it asks a ``Database`` for its engine,
for how a claim keeps its rows from other claims (``claims_skip_locked``), to announce new due
deliveries inside a transaction, and to listen for other processes' announcements.

- SQLite (the embedded default): WAL, ``busy_timeout``, writers begin with
  ``BEGIN IMMEDIATE``, taking turns on a lock file first (``writer_lock``: across the
  processes on the file); one writer at a time makes the claim atomic; a commit that
  announced sends one byte to each other process listening on the same file (a Unix
  datagram socket each, in ``<db file>.wake/``: ``wake_sockets``). ``run_write`` runs a
  whole transaction in one step on a thread of its own (the ingest hot path).
- PostgreSQL (scale-out): the claim skips rows other workers are claiming
  (``FOR UPDATE SKIP LOCKED``); a commit that makes deliveries due sends ``NOTIFY``, and
  every worker process ``LISTEN``s on a connection of its own that reconnects by itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .config import Settings
from .wake_sockets import WakeSockets, sqlite_file, wake_folder
from .writer_lock import WriterLock

log = logging.getLogger("dispatcher.database")

IMMEDIATE = "dispatcher_immediate"  # execution option: a write transaction
ANNOUNCED = "dispatcher_announced"  # in a connection's info: wake other processes on commit
T = TypeVar("T")
CHANNEL = "dispatcher_deliveries"
# The first key of tenant advisory locks (the second is the id's hash): apart from others.
TENANT_LOCK_SPACE = 0x7E4A


class Wakeup:
    """Tells idle workers in this process that deliveries may be due."""

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


class Writer(Protocol):
    """Where write transactions begin: SQLite's queue of writers, PostgreSQL's engine."""

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


class _QueuedWriter:
    """SQLite's writers, one at a time: within a process they queue here, in order, and
    across the processes on one file on its ``WriterLock``, rather than in SQLite's busy
    handler, which sleeps in growing steps (1, 2, 5, 10 ms, ...), so that a claim waits
    behind a recording no longer than it takes. A transaction that announced calls
    ``committed`` after its commit."""

    def __init__(self, engine: AsyncEngine, committed: Callable[[], None],
                 across: WriterLock) -> None:
        self.engine = engine
        self.committed = committed
        self.across = across
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary())

    def lock(self) -> asyncio.Lock:
        """This event loop's turn to write (for writers that do not use ``begin``)."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.lock():
            async with self.across.held(), self.engine.begin() as conn:
                try:
                    yield conn
                finally:
                    announced = conn.info.pop(ANNOUNCED, False)
            if announced:
                self.committed()


class Database:
    """SQLite: the embedded default."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = self._make_engine(settings)
        folder = wake_folder(settings.database_url)
        self._wakes = None if folder is None else WakeSockets(folder)
        path = sqlite_file(settings.database_url)
        self._across = WriterLock(None if path is None else path + ".lock")
        self._queued = _QueuedWriter(self.engine.execution_options(**{IMMEDIATE: True}),
                                     self._tell_others, self._across)
        self.writer: Writer = self._queued
        self.wakeup = Wakeup()
        # run_write's thread and its synchronous engine, made on first use.
        self._one_step: tuple[ThreadPoolExecutor, sa.Engine] | None = None

    def _make_engine(self, settings: Settings) -> AsyncEngine:
        engine = create_async_engine(
            settings.database_url, connect_args={"timeout": 30}, hide_parameters=True
        )
        self._set_up_connections(engine.sync_engine)
        return engine

    def _set_up_connections(self, engine: sa.Engine) -> None:
        synchronous = self.settings.sqlite_synchronous

        @sa_event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            # Transactions are begun by hand below, so that writers take the lock up front.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.close()

        @sa_event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # A deferred transaction that reads then writes can fail with SQLITE_BUSY at
            # once (no busy wait on a lock upgrade); writers start with BEGIN IMMEDIATE.
            immediate = conn.get_execution_options().get(IMMEDIATE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    async def run_write(self, work: Callable[[sa.Connection], T]) -> T:
        """``work(conn)`` in one write transaction, committed when it returns (rolled back
        if it raises), with a synchronous connection: for a transaction of several
        statements on a hot path (``Store``'s group commit of events).

        SQLite: in one step on a thread of its own, with a (pysqlite) connection of its own
        to the same file, in turn with this process's other writers (``_QueuedWriter``).
        Through aiosqlite each cursor call is a round trip to its thread, some 20 for such a
        transaction, each waiting for the busy event loop to come round (figures in docs/).
        """
        executor, engine = self._one_step_engine()

        def transaction() -> T:
            with self._across.held_blocking(), engine.begin() as conn:
                try:
                    result = work(conn)
                finally:
                    announced = conn.info.pop(ANNOUNCED, False)
            if announced:
                self._tell_others()  # here, off the event loop
            return result

        async with self._queued.lock():
            return await asyncio.get_running_loop().run_in_executor(executor, transaction)

    def _one_step_engine(self) -> tuple[ThreadPoolExecutor, sa.Engine]:
        if self._one_step is None:
            url = make_url(self.settings.database_url).set(drivername="sqlite")  # pysqlite
            # One thread uses it, one connection at a time (StaticPool: always the same).
            engine = sa.create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False},
                poolclass=sa.pool.StaticPool, hide_parameters=True,
            ).execution_options(**{IMMEDIATE: True})
            self._set_up_connections(engine.engine)
            executor = ThreadPoolExecutor(1, thread_name_prefix="dispatcher-sqlite-write")
            self._one_step = (executor, engine)
        return self._one_step

    def announce_sync(self, conn: sa.Connection) -> None:
        """``announce`` on ``run_write``'s synchronous connection."""
        conn.info[ANNOUNCED] = True

    def _tell_others(self) -> None:
        if self._wakes is not None:
            self._wakes.send()

    # Whether a claim locks the due rows it chooses, skipping those others hold: not here,
    # where one writer at a time makes the sub-select and update atomic already.
    claims_skip_locked = False

    def tenant_locks(self, tenant_ids: Iterable[str], *, exclusive: bool = False
                     ) -> sa.TextClause | None:
        """A statement holding a lock per tenant to the end of the transaction: shared by
        what is being made for a tenant (events, keys, subscriptions), exclusive for its
        deletion, which so waits for them and then deletes them too. None here: SQLite's one
        writer already runs them one after another."""
        return None

    def insert_once(self, table: sa.Table) -> sa.Insert:
        """An INSERT that skips rows whose key exists: writing the same rows again (after a
        commit whose answer was lost with the connection) changes nothing."""
        return _sqlite_insert_once(table)

    async def announce(self, conn: AsyncConnection) -> None:
        """Inside a transaction that makes deliveries due: tell other processes on commit."""
        conn.info[ANNOUNCED] = True

    async def listen(self) -> None:
        """Turn other processes' announcements into wake-ups, until cancelled."""
        if self._wakes is not None:
            await self._wakes.listen(self.wakeup.notify, self.settings.poll_interval_seconds)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._wakes is not None:
            self._wakes.close()
        if self._one_step is not None:
            executor, engine = self._one_step
            self._one_step = None
            await asyncio.get_running_loop().run_in_executor(executor, engine.engine.dispose)
            executor.shutdown(wait=False)
        self._across.close()


class PostgresDatabase(Database):
    """PostgreSQL: many API and worker processes on one database."""

    def __init__(self, settings: Settings, *, serves_requests: bool = True) -> None:
        self.serves_requests = serves_requests
        super().__init__(settings)
        self.writer = self.engine  # writers run side by side; row locks order them

    def _make_engine(self, settings: Settings) -> AsyncEngine:
        engine = create_async_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
            pool_recycle=1800,
            # A process that answers requests pings every connection it takes from the
            # pool, so no request fails on one the server dropped; a worker retries its
            # statements anyway, and pings only connections that sat idle.
            pool_pre_ping=self.serves_requests,
            hide_parameters=True,  # statements in logs and errors never carry values
            connect_args={
                "timeout": settings.db_connect_timeout_seconds,
                "command_timeout": settings.db_command_timeout_seconds,
                "server_settings": {"application_name": "dispatcher"},
            },
        )
        if not self.serves_requests:
            _ping_when_idle(engine)
        return engine

    claims_skip_locked = True  # FOR UPDATE SKIP LOCKED: concurrent claims take other rows

    def tenant_locks(self, tenant_ids: Iterable[str], *, exclusive: bool = False
                     ) -> sa.TextClause | None:
        # Advisory locks live in memory: unlike a row lock they write nothing to the tenant's
        # row (no WAL, no multixact) on the ingest path. In sorted order: no deadlock.
        how = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        return sa.text(
            f"SELECT {how}({TENANT_LOCK_SPACE}, hashtext(t)) "
            "FROM unnest(CAST(:ids AS text[])) AS t ORDER BY t"
        ).bindparams(ids=sorted(set(tenant_ids)))

    def insert_once(self, table: sa.Table) -> sa.Insert:
        return _postgres_insert_once(table)

    async def announce(self, conn: AsyncConnection) -> None:
        # Delivered when (and only if) the transaction commits.
        await conn.execute(sa.text(f"SELECT pg_notify('{CHANNEL}', '')"))

    def announce_sync(self, conn: sa.Connection) -> None:
        conn.execute(sa.text(f"SELECT pg_notify('{CHANNEL}', '')"))

    async def run_write(self, work: Callable[[sa.Connection], T]) -> T:
        """On the pool, as any other transaction: asyncpg needs no thread."""
        async with self.engine.begin() as conn:
            return await conn.run_sync(work)

    async def listen(self) -> None:
        url = make_url(self.settings.database_url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        delay = 0.5
        while True:
            try:
                await self._listen_once(dsn)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection lost (%s); reconnecting in %.1f s",
                            type(exc).__name__, delay)
            # Whatever was announced while the connection was down: look now.
            self.wakeup.notify()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _listen_once(self, dsn: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(
            dsn, timeout=self.settings.db_connect_timeout_seconds,
            server_settings={"application_name": "dispatcher-listen"},
        )
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CHANNEL, lambda *_a: self.wakeup.notify())
            self.wakeup.notify()
            while not lost.is_set():
                try:
                    async with asyncio.timeout(10):
                        await lost.wait()
                except TimeoutError:
                    # A half-open TCP connection never says it is gone: ask.
                    await conn.fetchval("SELECT 1", timeout=5)
            raise ConnectionError("the LISTEN connection was closed")
        finally:
            if not conn.is_closed():
                conn.terminate()


# A pooled connection idle this long is pinged before use; one used more recently is not.
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """``pool_pre_ping``, for a worker's connections that sat idle: pinging every checkout
    cost three round trips (asyncpg pings inside a transaction of its own), a third of a
    claim's CPU.
    A connection that dies while in steady use fails one statement instead, which
    invalidates the whole pool, as a failed ping would."""
    pool = engine.sync_engine.pool

    @sa_event.listens_for(pool, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa_event.listens_for(pool, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_conn.ping()
        except Exception as exc:  # the pool connects afresh (up to three times)
            raise sa.exc.DisconnectionError(str(exc)) from exc


# Built once per table: a statement object keeps its cache key (store/claims.py says why).
@functools.cache
def _sqlite_insert_once(table: sa.Table) -> sa.Insert:
    from sqlalchemy.dialects.sqlite import insert

    return insert(table).on_conflict_do_nothing()


@functools.cache
def _postgres_insert_once(table: sa.Table) -> sa.Insert:
    from sqlalchemy.dialects.postgresql import insert

    return insert(table).on_conflict_do_nothing()


def open_database(settings: Settings, *, serves_requests: bool = True) -> Database:
    """The store's database; ``serves_requests`` False for a process that only delivers."""
    if settings.database_url.startswith("sqlite"):
        return Database(settings)
    if settings.database_url.startswith("postgresql"):
        return PostgresDatabase(settings, serves_requests=serves_requests)
    raise ValueError("DISPATCHER_DATABASE_URL must be sqlite+aiosqlite:// or postgresql+asyncpg://")
