"""Wake-ups between processes on one SQLite file: where they meet, one byte per announcing
commit to every other listener, dead listeners' sockets removed."""

from __future__ import annotations

import asyncio
import os
import socket
import stat

import pytest
import sqlalchemy as sa

from dispatcher.config import Settings
from dispatcher.database import Database
from dispatcher.wake_sockets import WakeSockets, wake_folder


@pytest.mark.parametrize(("url", "folder"), [
    ("sqlite+aiosqlite:////srv/hooks/dispatcher.db", "/srv/hooks/dispatcher.db.wake"),
    ("sqlite+aiosqlite:///./dispatcher.db", os.path.abspath("dispatcher.db") + ".wake"),
    ("sqlite+aiosqlite:///file:/srv/d.db?uri=true", "/srv/d.db.wake"),
    ("sqlite+aiosqlite://", None),
    ("sqlite+aiosqlite:///:memory:", None),
    ("sqlite+aiosqlite:///file:mem?mode=memory&uri=true", None),
    ("postgresql+asyncpg://u@127.0.0.1/d", None),
])
def test_wake_folder(url, folder):
    assert wake_folder(url) == folder


def readable(sock: socket.socket) -> int:
    got = 0
    while True:
        try:
            got += len(sock.recv(64))
        except BlockingIOError:
            return got


def test_a_commit_wakes_every_other_listener_once(tmp_path):
    folder = str(tmp_path / "d.db.wake")
    one, two, api = WakeSockets(folder), WakeSockets(folder), WakeSockets(folder)
    first, second = one.bind(), two.bind()
    try:
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        api.send()  # the api process: it does not listen itself
        assert readable(first) == 1 and readable(second) == 1
        one.send()  # a listener wakes the others, not itself
        assert readable(first) == 0 and readable(second) == 1
    finally:
        for wakes in (one, two, api):
            wakes.close()
    assert not os.path.exists(folder)  # the last to leave took it along


def test_a_killed_listeners_socket_is_removed_by_the_next_commit(tmp_path):
    folder = str(tmp_path / "d.db.wake")
    dead, live, api = WakeSockets(folder), WakeSockets(folder), WakeSockets(folder)
    dead.bind().close()  # as kill -9 leaves it: the file, and nobody reading it
    sock = live.bind()
    try:
        assert len(os.listdir(folder)) == 2
        api.send()
        assert os.listdir(folder) == [os.path.basename(live.path or "")]
        assert readable(sock) == 1
    finally:
        live.close()
        api.close()


def test_a_full_listener_does_not_block_the_commit(tmp_path):
    folder = str(tmp_path / "d.db.wake")
    idle, api = WakeSockets(folder), WakeSockets(folder)
    sock = idle.bind()
    try:
        for _ in range(1000):  # far more than a datagram queue holds
            api.send()
        assert readable(sock) > 0
    finally:
        idle.close()
        api.close()


def test_a_database_in_memory_does_not_listen():
    db = Database(Settings(database_url="sqlite+aiosqlite://"))

    async def main() -> None:
        await asyncio.wait_for(db.listen(), 1)  # returns at once
        await db.dispose()

    asyncio.run(main())


def test_only_a_committed_announcement_wakes_another_process(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"
    listener = WakeSockets(wake_folder(url) or "")
    sock = listener.bind()
    db = Database(Settings(database_url=url))

    async def main() -> None:
        try:
            async with db.writer.begin() as conn:
                await conn.execute(sa.text("CREATE TABLE t (x)"))
                await db.announce(conn)
            assert readable(sock) == 1
            with pytest.raises(RuntimeError):
                async with db.writer.begin() as conn:
                    await db.announce(conn)
                    raise RuntimeError("rolled back")
            async with db.writer.begin() as conn:  # nothing announced
                await conn.execute(sa.text("INSERT INTO t VALUES (1)"))

            def write(conn: sa.Connection) -> None:
                db.announce_sync(conn)

            await db.run_write(write)
            assert readable(sock) == 1
        finally:
            await db.dispose()

    try:
        asyncio.run(main())
    finally:
        listener.close()
