"""Wake-ups between the processes on one SQLite file (PostgreSQL has NOTIFY): each process
that runs workers listens on a Unix datagram socket in ``<file>.wake/``, and a commit that
made deliveries due sends one byte to every other socket there. ``database.Database``
decides when; this module is the mechanism."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from contextlib import suppress

from sqlalchemy.engine import make_url

log = logging.getLogger("dispatcher.database")


def sqlite_file(database_url: str) -> str | None:
    """The absolute path of a SQLite database file; None for a database that is not a file
    (in memory: no other process can open it) or not SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    path = url.database or ""
    if url.query.get("mode") == "memory" or path in ("", ":memory:") or (
            path.startswith("file:") and "mode=memory" in path):
        return None
    return os.path.abspath(path.removeprefix("file:").split("?")[0])


def wake_folder(database_url: str) -> str | None:
    """Where the processes on one SQLite file meet for wake-ups: ``<file>.wake``."""
    path = sqlite_file(database_url)
    return None if path is None else path + ".wake"


class WakeSockets:
    """Wake-ups between the processes on one SQLite file: each listening process binds a
    Unix datagram socket in the wake folder (0700), and a commit that made deliveries due
    sends one byte, never blocking, to every other socket there."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path: str | None = None  # this process's socket, while it listens
        self._listening: socket.socket | None = None
        self._sender: socket.socket | None = None

    def bind(self) -> socket.socket:
        """This process's socket, non-blocking; OSError if it cannot be made."""
        path = os.path.join(self.folder, f"{os.getpid()}-{secrets.token_hex(4)}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            for tries_left in (2, 1, 0):
                with suppress(FileExistsError):
                    os.mkdir(self.folder, 0o700)
                try:
                    sock.bind(path)
                    break
                except FileNotFoundError:
                    # The folder was removed meanwhile by the last process leaving it.
                    if not tries_left:
                        raise
        except OSError:
            sock.close()
            raise
        self.path, self._listening = path, sock
        return sock

    async def listen(self, woken: Callable[[], None], poll_seconds: float) -> None:
        """Call ``woken`` after each burst of wake-ups, until cancelled. Returns at once if
        this process cannot listen here: its idle workers then look every ``poll_seconds``."""
        if self.path is not None:
            return  # listening already
        try:
            sock = self.bind()
        except OSError as exc:
            log.warning("no wake-ups from other processes on this SQLite file (cannot listen "
                        "in %s: %s); idle workers look every %g s", self.folder,
                        exc.strerror or exc, poll_seconds)
            return
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), _drain, sock, woken)
        try:
            await asyncio.Event().wait()
        finally:
            loop.remove_reader(sock.fileno())
            self.unbind()

    def unbind(self) -> None:
        if self._listening is not None:
            self._listening.close()
            self._listening = None
        if self.path is not None:
            with suppress(OSError):
                os.unlink(self.path)
            self.path = None
            with suppress(OSError):  # the last to leave takes the folder (if empty) along
                os.rmdir(self.folder)

    def send(self) -> None:
        """One byte to every other listening process (a few µs each, after a commit)."""
        try:
            names = os.listdir(self.folder)
        except OSError:
            return  # no folder: no process listens
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        for name in names:
            path = os.path.join(self.folder, name)
            if path == self.path:
                continue  # this process wakes its own workers directly
            try:
                self._sender.sendto(b"\0", path)
            except ConnectionRefusedError:
                # Left by a process that was killed: nobody reads it any more.
                with suppress(OSError):
                    os.unlink(path)
            except OSError:
                pass  # a full queue has wake-ups enough; a socket just removed is gone

    def close(self) -> None:
        self.unbind()
        if self._sender is not None:
            self._sender.close()
            self._sender = None


def _drain(sock: socket.socket, woken: Callable[[], None]) -> None:
    with suppress(OSError):
        while sock.recv(64):  # however many came: one wake-up
            pass
    woken()
