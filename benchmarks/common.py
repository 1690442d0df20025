"""What every benchmark shares: results, fresh databases, dispatcher processes.

Everything here talks to 127.0.0.1 only, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher import migrate
from dispatcher.models import delivery_table

POSTGRES_ADMIN_URL = os.environ.get(
    "DISPATCHER_BENCH_POSTGRES",
    os.environ.get("DISPATCHER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
ADMIN_TOKEN = "bench-admin-token-0123456789"
POLL_SECONDS = 0.05


@dataclass
class Result:
    """One measurement. ``n`` things done in ``seconds``; ``extra`` holds figures that are
    not a rate (latency percentiles, RSS, ...)."""

    name: str
    n: int
    concurrency: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")


def deadline_for(n: int) -> float:
    """Generous: at 50 per second something is broken, and the run should say so."""
    return 30 + n / 50


# ---- databases -----------------------------------------------------------------------------

async def _pg_admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used now, or None when it answers."""
    try:
        await _pg_admin("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any reason means: not this time
        return f"{type(exc).__name__}: {exc}"
    return None


@asynccontextmanager
async def fresh_database(engine: str) -> AsyncIterator[str]:
    """A migrated, empty database of ``engine`` ("sqlite" or "postgresql"); its URL.
    Removed afterwards."""
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="dispatcher-bench-") as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
            await asyncio.to_thread(migrate.upgrade, url)
            yield url
        return
    if engine != "postgresql":
        raise ValueError(f"unknown engine {engine!r}")
    name = f"dispatcher_bench_{os.getpid()}_{secrets.token_hex(3)}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        url = (make_url(POSTGRES_ADMIN_URL)
               .set(drivername="postgresql+asyncpg", database=name)
               .render_as_string(hide_password=False))
        await asyncio.to_thread(migrate.upgrade, url)
        yield url
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def wait_for_deliveries(database_url: str, n: int, deadline: float,
                              status: str = "succeeded") -> float:
    """Poll until ``n`` deliveries have ``status``; the monotonic time it was seen."""
    d = delivery_table
    query = sa.select(sa.func.count()).select_from(d).where(d.c.status == status)
    engine = create_async_engine(database_url)
    done = 0
    try:
        async with asyncio.timeout(deadline):
            while True:
                async with engine.connect() as conn:
                    done = await conn.scalar(query)
                if done >= n:
                    return time.monotonic()
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        raise TimeoutError(f"only {done} of {n} deliveries {status} within {deadline:g} s") \
            from None
    finally:
        await engine.dispose()


# ---- dispatcher as a process ---------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from the parent ids in /proc (a process that ends
    meanwhile is left out)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (name) state ppid ...": the name may hold spaces and parentheses.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, level = [pid], [pid]
    while level:  # bounded: each process is added once, and there are finitely many
        level = [child for child, parent in parents.items() if parent in level
                 and child not in tree]
        tree += level
    return tree


def stop(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``grace`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_until_ready(process: subprocess.Popen[bytes], ready: Callable[[], bool],
                     timeout: float, what: str) -> None:
    """Poll ``ready()`` until it is true; RuntimeError if ``process`` exits first or
    ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout:g} s")
        time.sleep(0.05)


class DispatcherProcess:
    """``dispatcher serve|api|worker`` as a process of its own, on 127.0.0.1.

    ``with DispatcherProcess("api", database_url, DISPATCHER_X="y") as p:`` starts it and
    waits until it is ready (``/healthz`` for serve and api, ``/metrics`` for a worker,
    served once its loop runs); leaving stops it with SIGTERM (SIGKILL after 30 s). Its log
    is ``p.log()``.
    """

    def __init__(self, command: str, database_url: str, **env: str) -> None:
        self.command = command
        self.port = free_port()
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in __exit__
            prefix=f"dispatcher-bench-{command}-", suffix=".log", delete=False)
        self.env = {
            **os.environ,
            "DISPATCHER_DATABASE_URL": database_url,
            "DISPATCHER_ADMIN_TOKEN": ADMIN_TOKEN,
            "DISPATCHER_ALLOW_PRIVATE_TARGETS": "true",
            "DISPATCHER_PORT": str(self.port),
            # Access logs and the info line per attempt are left out of timings (as in
            # production at WARNING).
            "DISPATCHER_LOG_LEVEL": "warning",
            # A worker's metrics endpoint answers once it runs; only a worker's: the workers
            # serve may start inherit this environment, and must not take the API's port.
            **({"DISPATCHER_METRICS_PORT": str(self.port)} if command == "worker" else {}),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def __enter__(self) -> DispatcherProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dispatcher.cli", self.command],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(self.process, self._ready, 60, f"dispatcher {self.command}")
        except RuntimeError as exc:
            self.__exit__()
            raise RuntimeError(f"{exc}:\n{self.log()[-3000:]}") from None
        return self

    def _ready(self) -> bool:
        import httpx

        path = "/metrics" if self.command == "worker" else "/healthz"
        try:
            return httpx.get(self.url + path, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory now (``rss``) and at its peak (``hwm``), from /proc, of the
        process and the processes it started (``serve`` may start workers), summed; and
        ``processes``, how many there were."""
        found = {"rss": 0, "hwm": 0, "processes": 0}
        for pid in process_tree(self.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue  # it has just ended
            found["processes"] += 1
            for line in status.splitlines():
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found["rss" if name == "VmRSS" else "hwm"] += int(value.split()[0]) * 1024
        return found

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            stop(self.process, 30)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


async def count_deliveries(database_url: str, status: str) -> int:
    """How many deliveries have ``status``."""
    d = delivery_table
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(
                sa.select(sa.func.count()).select_from(d).where(d.c.status == status)) or 0
    finally:
        await engine.dispose()


async def count_rows(database_url: str, table: str) -> int:
    """How many rows ``table`` has."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(sa.text(f"SELECT count(*) FROM {table}"))  # noqa: S608
    finally:
        await engine.dispose()
