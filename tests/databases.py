"""Fresh, migrated databases for tests: SQLite files, and PostgreSQL databases.

Each engine has one database migrated to head per session; each test gets a copy (a file
copy, or ``CREATE DATABASE … TEMPLATE``), dropped after it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher import migrate

POSTGRES_ADMIN_URL = os.environ.get(
    "DISPATCHER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def run_async(work: Any) -> Any:
    """``asyncio.run``, also where this thread already runs a loop (Playwright's sync API
    keeps one running while a browser test is open): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


def run_in_thread_if_loop(work: Any) -> Any:
    """``work()``, in a thread of its own where this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def postgres_problem() -> str | None:
    """None when the PostgreSQL server for tests answers, else why not."""

    async def check() -> None:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
        await conn.close()

    try:
        run_async(check())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def _admin(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _pg_url(name: str) -> str:
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


class Databases:
    def __init__(self, engine: str, folder: Path) -> None:
        self.engine = engine
        self.folder = folder
        self.prefix = f"dispatcher_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.made: set[str] = set()
        # Alembic runs its own event loop: off this thread when a browser test holds one.
        self.template = run_in_thread_if_loop(self._create_template)

    def _create_template(self) -> str:
        if self.engine == "sqlite":
            path = self.folder / "template.db"
            migrate.upgrade(f"sqlite+aiosqlite:///{path}")
            return str(path)
        name = f"{self.prefix}_template"
        run_async(_admin(f'CREATE DATABASE "{name}"'))
        migrate.upgrade(_pg_url(name))
        return name

    def empty(self) -> str:
        """The URL of a new database with no schema at all."""
        if self.engine == "sqlite":
            path = self.folder / f"empty_{secrets.token_hex(4)}.db"
            return f"sqlite+aiosqlite:///{path}"
        name = f"{self.prefix}_{len(self.made)}_empty"
        run_async(_admin(f'CREATE DATABASE "{name}"'))
        self.made.add(name)
        return _pg_url(name)

    def new(self) -> str:
        """The URL of a new database at head."""
        if self.engine == "sqlite":
            path = self.folder / f"db_{len(self.made)}_{secrets.token_hex(3)}.db"
            shutil.copy(self.template, path)
            self.made.add(str(path))
            return f"sqlite+aiosqlite:///{path}"
        name = f"{self.prefix}_{len(self.made)}"
        run_async(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        self.made.add(name)
        return _pg_url(name)

    def drop(self, url: str) -> None:
        if self.engine == "sqlite":
            return  # files go with pytest's tmp folders
        name = make_url(url).database
        self.made.discard(name)
        run_async(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        if self.engine == "postgresql":
            names = [*self.made, self.template]
            run_async(_admin(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names)))

    def unreachable_url(self) -> str:
        """A URL of the same engine whose database never answers."""
        if self.engine == "sqlite":
            return f"sqlite+aiosqlite:///{self.folder}"  # a folder, not a file
        return "postgresql+asyncpg://postgres@127.0.0.1:1/none"


def scalar(url: str, sql: str, **params: Any) -> Any:
    """One value from the database at ``url`` (for assertions on rows)."""

    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return (await conn.execute(sa.text(sql), params)).scalar()
        finally:
            await engine.dispose()

    return run_async(run())


def rows(url: str, sql: str, **params: Any) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(sa.text(sql), params)).all())
        finally:
            await engine.dispose()

    return run_async(run())


def execute(url: str, statement: Any) -> None:
    """Run one SQLAlchemy statement at ``url`` and commit (to set a state a test cannot wait
    for, such as a failure streak begun minutes ago)."""

    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(statement)
        finally:
            await engine.dispose()

    run_async(run())
