"""Several worker processes writing to one SQLite file: how long their writers wait for each
other in SQLite's busy handler.

    .venv/bin/python -m benchmarks.sqlite_writers [--n 20000] [--processes 1,2,3]

Within a process, writers queue on an ``asyncio.Lock`` (``database._QueuedWriter``); between
processes they meet in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25,
50, 50, 100 ms ... between tries while another process holds the write lock. Each run
loads N due deliveries (4 subscriptions to the benchmark receiver, in a process of its own),
starts K ``dispatcher worker`` processes on the file and times until all are succeeded.
Every worker process is started through ``_probe`` below, which times each
``BEGIN IMMEDIATE`` on the SQLite thread that runs it: with WAL, only a writer waits, and
only there (readers never wait; a commit holds the lock it took). It prints, per run, the
deliveries per second and, per process, its write transactions, the time its writers waited
in all (and as a share of the run), the median, p99 and longest wait, the waits over 1 ms
(the busy handler's first sleep) and their shape, and how long its writers held the lock
(BEGIN's end to COMMIT's).

What it showed is in docs/internals.md ("SQLite").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .bulk import load_backlog, make_subscriptions
from .common import ADMIN_TOKEN, deadline_for, free_port, fresh_database, stop
from .common import wait_for_deliveries as wait_for
from .receiver import Receiver

# Run in each worker process before the dispatcher command: time every BEGIN where it runs.
_PROBE = r"""
import atexit, json, os, sys, time
from functools import partial
import aiosqlite.core
import sqlalchemy as sa

waits = []
holds = []  # BEGIN's end to COMMIT's end: how long a writer kept the others out
started = time.monotonic()
original = aiosqlite.core.Connection._execute

async def _execute(self, fn, *args, **kwargs):
    if args and isinstance(args[0], str) and args[0].startswith("BEGIN"):
        call = partial(fn, *args, **kwargs)

        def timed():
            at, t = time.monotonic(), time.perf_counter()
            try:
                return call()
            finally:
                self._bench_began = time.perf_counter()
                waits.append((at, self._bench_began - t))

        return await original(self, timed)
    if getattr(fn, "__name__", "") in ("commit", "rollback"):
        call = partial(fn, *args, **kwargs)

        def timed_end():
            try:
                return call()
            finally:
                began = getattr(self, "_bench_began", None)
                if began is not None:
                    holds.append((time.monotonic(), time.perf_counter() - began))
                    self._bench_began = None

        return await original(self, timed_end)
    return await original(self, fn, *args, **kwargs)

aiosqlite.core.Connection._execute = _execute

@sa.event.listens_for(sa.Engine, "before_cursor_execute")
def _before(conn, cursor, statement, parameters, context, executemany):
    if conn.dialect.driver == "pysqlite" and statement.startswith("BEGIN"):
        conn.info["begin_at"] = (time.monotonic(), time.perf_counter())

@sa.event.listens_for(sa.Engine, "after_cursor_execute")
def _after(conn, cursor, statement, parameters, context, executemany):
    at = conn.info.pop("begin_at", None)
    if at is not None:
        conn.info["began"] = time.perf_counter()
        waits.append((at[0], conn.info["began"] - at[1]))

@sa.event.listens_for(sa.Engine, "commit")
@sa.event.listens_for(sa.Engine, "rollback")
def _end(conn):
    began = conn.info.pop("began", None)
    if began is not None and conn.dialect.driver == "pysqlite":  # up to COMMIT itself
        holds.append((time.monotonic(), time.perf_counter() - began))

@atexit.register
def _dump():
    with open(os.environ["BENCH_WAITS_FILE"], "w") as f:
        json.dump({"pid": os.getpid(), "waits": waits, "holds": holds,
                   "seconds": time.monotonic() - started}, f)

from dispatcher.cli import app
app()
"""


def _worker(database_url: str, waits_file: Path, log: Any) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "DISPATCHER_DATABASE_URL": database_url,
        "DISPATCHER_ADMIN_TOKEN": ADMIN_TOKEN,
        "DISPATCHER_ALLOW_PRIVATE_TARGETS": "true",
        "DISPATCHER_LOG_LEVEL": "warning",
        "DISPATCHER_METRICS_PORT": str(port),  # answers once the worker runs
        "DISPATCHER_MAX_IN_FLIGHT_PER_SUBSCRIPTION": "10000",
        "DISPATCHER_POLL_INTERVAL_SECONDS": "0.2",
        "BENCH_WAITS_FILE": str(waits_file),
    }
    process = subprocess.Popen([sys.executable, "-c", _PROBE, "worker"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    return process, port


def _workers(database_url: str, folder: Path, count: int
             ) -> list[tuple[subprocess.Popen[bytes], int]]:
    with open(folder / "workers.log", "ab") as log:
        return [_worker(database_url, folder / f"waits{i}.json", log) for i in range(count)]


def _ready(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _summary(found: dict[str, Any], since: float, run_seconds: float) -> dict[str, Any]:
    """The waits of writers that began after ``since`` (monotonic: the same clock in every
    process on Linux), i.e. not behind the benchmark's own bulk load."""
    waits = sorted(w for at, w in found["waits"] if at >= since)
    steps = (0.001, 0.01, 0.1, 1.0)
    shape = {f"<{int(b * 1000)}ms": sum(1 for w in waits if w < b and (
        i == 0 or w >= steps[i - 1])) for i, b in enumerate(steps)}
    if not waits:
        return {"pid": found["pid"], "transactions": 0}
    total = sum(waits)
    holds = sorted(h for at, h in found.get("holds", ()) if at >= since)
    return {
        "pid": found["pid"],
        "transactions": len(waits),
        "waited_s": round(total, 3),
        "share_of_run": round(total / run_seconds, 4),
        "median_ms": round(waits[len(waits) // 2] * 1000, 3),
        "p99_ms": round(waits[min(len(waits) - 1, int(len(waits) * 0.99))] * 1000, 3),
        "max_ms": round(waits[-1] * 1000, 1),
        "over_1ms": sum(w > 0.001 for w in waits),
        "waits": shape,
        "held_s": round(sum(holds), 3),
        "hold_median_ms": round(holds[len(holds) // 2] * 1000, 2) if holds else None,
        "hold_max_ms": round(holds[-1] * 1000, 1) if holds else None,
    }


async def one_run(n: int, processes: int, receiver_port: int) -> dict[str, Any]:
    async with fresh_database("sqlite") as database_url:
        urls = [f"http://127.0.0.1:{receiver_port}/hook/{i}" for i in range(4)]
        owner, subs = await make_subscriptions(database_url, urls, ["bench.*"])
        folder = Path(tempfile.mkdtemp(prefix="bench-writers-"))
        started = _workers(database_url, folder, processes)
        try:
            deadline = time.monotonic() + 60
            while not all(_ready(port) for _, port in started):
                if time.monotonic() > deadline or any(p.poll() is not None for p, _ in started):
                    raise RuntimeError((folder / "workers.log").read_text()[-3000:])
                await asyncio.sleep(0.1)
            await load_backlog(database_url, owner, subs, n)
            begin = time.monotonic()
            done = await wait_for(database_url, n, deadline_for(n))
            seconds = done - begin
        finally:
            for process, _ in started:
                await asyncio.to_thread(stop, process, 30)
        per_process = [_summary(json.loads((folder / f"waits{i}.json").read_text()), begin,
                                seconds) for i in range(processes)]
    return {"processes": processes, "deliveries": n, "seconds": round(seconds, 2),
            "per_second": round(n / seconds), "writers": per_process}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--processes", default="1,2")
    args = parser.parse_args(argv)
    with Receiver() as port:
        for count in (int(p) for p in args.processes.split(",")):
            found = asyncio.run(one_run(args.n, count, port))
            print(json.dumps(found), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
