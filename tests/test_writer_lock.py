"""SQLite's writers take turns across processes on ``<file>.lock``: a writer of this process
waits while another process holds it and starts the moment it is let go; a waiter that is
cancelled does not keep it; a lock file that cannot be made leaves SQLite's busy handler
to do the job."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from dispatcher.config import Settings
from dispatcher.database import Database
from dispatcher.writer_lock import WriterLock

# Another process holding the lock until its stdin closes.
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def in_a_loop(test):
    """The coroutine ``test`` run as a plain test (fixtures still passed)."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(test(*args, **kwargs))
    return run


class OtherProcess:
    """``with OtherProcess(path):`` another process holds the lock on ``path`` meanwhile;
    ``let_go()`` ends it (and so its lock) early."""

    def __init__(self, path: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", HOLDER, path],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __enter__(self) -> OtherProcess:
        assert self.process.stdout.readline() == b"held\n"
        return self

    def let_go(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.let_go()
        self.process.stdout.close()


@in_a_loop
async def test_a_writer_waits_for_another_process_and_starts_when_it_lets_go(tmp_path):
    path = str(tmp_path / "d.db.lock")
    lock = WriterLock(path)
    try:
        with OtherProcess(path) as other:
            waiting = asyncio.create_task(lock.hold())
            await asyncio.sleep(0.3)
            assert not waiting.done()  # the other process holds it
            let_go = time.perf_counter()
            other.let_go()
            async with asyncio.timeout(5):
                await waiting
            # Woken by the kernel, not by a poll in growing steps.
            assert time.perf_counter() - let_go < 0.5
        lock.release()
    finally:
        lock.close()


@in_a_loop
async def test_a_cancelled_waiter_lets_go_of_the_lock_it_gets_later(tmp_path):
    path = str(tmp_path / "d.db.lock")
    cancelled, later = WriterLock(path), WriterLock(path)
    try:
        with OtherProcess(path) as other:
            waiting = asyncio.create_task(cancelled.hold())
            await asyncio.sleep(0.2)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            other.let_go()  # the cancelled waiter's thread gets it now, and must let go
            async with asyncio.timeout(5):
                await later.hold()
            later.release()
    finally:
        cancelled.close()
        later.close()


@in_a_loop
async def test_a_lock_file_that_cannot_be_made_holds_nothing(tmp_path, caplog):
    lock = WriterLock(str(tmp_path / "no such folder" / "d.db.lock"))
    async with asyncio.timeout(1):
        await lock.hold()
    lock.hold_blocking()
    lock.release()
    assert "busy handler only" in caplog.text


@in_a_loop
async def test_the_databases_writers_take_turns_with_other_processes(tmp_path):
    db_path = tmp_path / "d.db"
    db = Database(Settings(database_url=f"sqlite+aiosqlite:///{db_path}"))
    try:
        async with db.writer.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (n INTEGER)"))
        async def write(n: int) -> None:
            async with db.writer.begin() as conn:
                await conn.execute(sa.text("INSERT INTO t VALUES (:n)"), {"n": n})

        def write_in_one_step(conn: sa.Connection) -> None:
            conn.execute(sa.text("INSERT INTO t VALUES (2)"))

        # Each way of writing on its own, as the other process holds the lock.
        for writing in (lambda: write(1), lambda: db.run_write(write_in_one_step)):
            with OtherProcess(f"{db_path}.lock") as other:
                waiting = asyncio.create_task(writing())
                await asyncio.sleep(0.3)
                assert not waiting.done()
                other.let_go()
                async with asyncio.timeout(5):
                    await waiting
        async with db.engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar() == 2
    finally:
        await db.dispose()
