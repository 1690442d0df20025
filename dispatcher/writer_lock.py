"""One writer at a time across the processes on one SQLite file: an exclusive ``flock`` on
``<file>.lock``, taken before ``BEGIN IMMEDIATE`` and let go after the commit. A process
waiting for it sleeps in the kernel and wakes the moment the holder lets go; SQLite's own
busy handler instead sleeps in growing steps (1, 2, 5, 10, 15, 20, 25 ms, ...) and so
turns a 2 ms wait behind another process into 25 ms (docs/benchmarks/measured-choices.md).
``busy_timeout`` stays as the backstop for writers that do not take this lock (migrations,
the CLI, other tools). ``database.Database`` decides when; this module is the mechanism."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

log = logging.getLogger("dispatcher.database")


class WriterLock:
    """An exclusive lock on one file, shared by every process on the same database. The
    file is opened on first use; if it cannot be, the lock does nothing (SQLite's busy
    handler still keeps writers apart, only slower)."""

    def __init__(self, path: str | None) -> None:
        """``path`` None: a database no other process opens (in memory); it holds nothing."""
        self.path = path
        self._fd: int | None = None
        self._unusable = path is None

    def _file(self) -> int | None:
        if self._fd is None and not self._unusable:
            assert self.path is not None
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self._unusable = True
                log.warning("writers of other processes on this SQLite file are kept apart "
                            "by SQLite's busy handler only (cannot open %s: %s)",
                            self.path, exc.strerror or exc)
        return self._fd

    def hold_blocking(self) -> None:
        """Wait for the lock in this thread (a thread of its own, never the event loop)."""
        fd = self._file()
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)

    async def hold(self) -> None:
        """Wait for the lock without blocking the event loop: at once when it is free, else
        on a thread. Cancelled while waiting, the lock is let go as soon as that thread
        gets it, so that no other process waits for a holder that is gone."""
        fd = self._file()
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waiting = asyncio.get_running_loop().run_in_executor(
            None, fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            waiting.add_done_callback(self._let_go_if_held)
            raise

    def _let_go_if_held(self, waiting: asyncio.Future[None]) -> None:
        if not waiting.cancelled() and waiting.exception() is None:
            self.release()

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        await self.hold()
        try:
            yield
        finally:
            self.release()

    @contextmanager
    def held_blocking(self) -> Iterator[None]:
        self.hold_blocking()
        try:
            yield
        finally:
            self.release()

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            with suppress(OSError):
                os.close(self._fd)
            self._fd = None
