"""Writes in batches, for the ingest hot path: concurrent callers' writes in one
transaction (``GroupCommit``), and many rows handed to the driver in few statements
(``DriverInsert``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Concurrent callers' writes in one transaction (group commit).

    ``await submit(item)`` queues the item and waits until the transaction holding it has
    committed; it returns the item's result, or raises its error (or the group's, when the
    whole transaction failed: then nothing of the group was stored). ``commit(items)`` runs
    one transaction for a group and returns one result per item, an exception instance for
    an item refused on its own.

    One group commits at a time (SQLite has one writer anyway); while it does, the next
    one gathers. Before each transaction the event loop turns a few times (``gather_turns``,
    no timer) so that requests already received join; a lone caller still waits for one
    transaction only, and under load one commit serves many callers. A caller that gives
    up before its group starts is left out of it; one that gives up later may still be
    committed (as with any request cut off during its commit).
    """

    def __init__(self, commit: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
                 max_batch: int = 64, gather_turns: int = 10) -> None:
        self._commit = commit
        self.max_batch = max_batch
        self.gather_turns = gather_turns
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="group-commit")
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                # Fuller groups commit less often (benchmarks/ingest.py). An idle loop turns
                # in microseconds; a busy one serves those requests meanwhile.
                for _ in range(self.gather_turns):
                    if len(self._queue) >= self.max_batch:
                        break
                    await asyncio.sleep(0)
                taken = self._queue[:self.max_batch]
                del self._queue[:self.max_batch]
                group = [(item, future) for item, future in taken if not future.done()]
                if group:
                    await self._commit_group(group)
        finally:  # cancelled (the loop is closing): nobody may wait forever
            for _, future in self._queue:
                future.cancel()
            self._queue.clear()

    async def _commit_group(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        results: list[R | Exception] = []
        try:
            results = list(await self._commit([item for item, _ in group]))
            if len(results) != len(group):
                raise RuntimeError(f"{len(results)} results for {len(group)} items")
        except Exception as exc:  # the transaction failed: nothing of it was stored
            results = [exc] * len(group)
        finally:
            for index, (_, future) in enumerate(group):
                if future.done():
                    continue  # its caller gave up
                if index >= len(results):  # cancelled while committing
                    future.cancel()
                elif isinstance(result := results[index], Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


class DriverInsert:
    """An ``INSERT`` of many rows handed straight to the driver (``exec_driver_sql``).

    For the deliveries of a group of events SQLAlchemy's per-row, per-column processing
    costs more than the database's own work. Here values go in as the column types would
    bind them (``bind``): the caller binds a value all rows share (a time) once. Rows go
    ``CHUNK`` to a statement (``VALUES (…), (…), …``) rather than one statement per row
    (executemany): fewer round trips on both engines (figures in docs/).
    """

    CHUNK = 50

    def __init__(self, table: sa.Table, columns: Sequence[str], dialect: sa.Dialect) -> None:
        self.columns = tuple(columns)
        self.sql = self._compile(table, dialect, 1)
        self.chunk_sql = self._compile(table, dialect, self.CHUNK)
        self._processors = {
            c: table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns}

    def _compile(self, table: sa.Table, dialect: sa.Dialect, rows: int) -> str:
        stmt = sa.insert(table).values(
            [{c: sa.bindparam(f"{c}_{i}") for c in self.columns} for i in range(rows)])
        compiled = stmt.compile(dialect=dialect)
        expected = tuple(f"{c}_{i}" for i in range(rows) for c in self.columns)
        if tuple(compiled.positiontup or ()) != expected:
            raise ValueError(f"{table.name}: the statement does not take {self.columns}")
        return str(compiled)

    def bind(self, column: str, value: Any) -> Any:
        processor = self._processors[column]
        return value if processor is None or value is None else processor(value)

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """``row``, its values bound already, in the statement's order."""
        return tuple([row[c] for c in self.columns])

    def execute(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (tuples in the order of ``columns``, values bound)."""
        size = self.CHUNK
        whole = len(rows) - len(rows) % size
        if whole:
            conn.exec_driver_sql(self.chunk_sql, [
                tuple([value for row in rows[i:i + size] for value in row])
                for i in range(0, whole, size)])
        if whole < len(rows):
            conn.exec_driver_sql(self.sql, rows[whole:])
