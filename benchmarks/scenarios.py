"""Latency, fan-out and backlog: three scenarios of the performance benchmark (issue 6).

    .venv/bin/python -m benchmarks.run --only latency,fanout,backlog [--quick]

Dispatcher runs as it is deployed: on SQLite one ``dispatcher serve`` process (API and
worker), on PostgreSQL ``dispatcher api`` and ``dispatcher worker`` apart (wake-ups through
NOTIFY/LISTEN). Settings are the defaults (``DISPATCHER_POLL_INTERVAL_SECONDS`` 1 s among
them: a new event must reach the worker by a wake-up, not by polling); the receiver
(``benchmarks/receiver.py``) is a process of its own on 127.0.0.1.

- ``latency``: events published at a steady 200/s, open loop (request i is sent at i/200 s
  from the start, whatever the earlier answers did), to one subscription; per event, the
  receiver's arrival time minus the time its 202 reached the publisher: p50, p99, max.
- ``fanout``: one event to 10,000 subscriptions; the time from the request until all
  10,000 deliveries are ``succeeded`` (their attempts are committed with that status).
- ``backlog``: M deliveries by one ``dispatcher worker`` process, the worker's RSS once
  they are done, with M pending deliveries in the database (``backlog-empty``) and with
  1,000,000 (``backlog-1m``; M are the oldest, delivered first).

``--quick`` (2 s of latency, 300 subscriptions, a backlog of 20,000 with M = 2,000, SQLite
only unless ``--engines`` says otherwise) runs in well under a minute, for the test suite.
Results carry ``concurrency`` = the worker's ``WORKER_CONCURRENCY`` (the default, 64).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher.config import Settings
from dispatcher.models import attempt_table, delivery_table

from .bulk import load_backlog, make_subscriptions
from .common import (
    ADMIN_TOKEN,
    POLL_SECONDS,
    DispatcherProcess,
    Result,
    deadline_for,
    fresh_database,
    wait_for_deliveries,
)
from .load import percentile
from .receiver import Receiver

CONCURRENCY = Settings.model_fields["worker_concurrency"].default
AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
MB = 1024 * 1024


# ---- shared parts --------------------------------------------------------------------------

@asynccontextmanager
async def off_loop(manager: Any) -> AsyncIterator[Any]:
    """A blocking context manager (a process to start and stop) entered and left in a
    thread. It is left even when interrupted while starting: the start is waited for."""
    entering = asyncio.ensure_future(asyncio.to_thread(manager.__enter__))
    try:
        yield await asyncio.shield(entering)
    finally:
        with contextlib.suppress(BaseException):
            await entering
        await asyncio.to_thread(manager.__exit__, None, None, None)


@asynccontextmanager
async def running(command: str, database_url: str, **env: str) -> AsyncIterator[
        DispatcherProcess]:
    async with off_loop(DispatcherProcess(command, database_url, **env)) as process:
        yield process


@asynccontextmanager
async def deployment(engine: str, database_url: str, **env: str) -> AsyncIterator[str]:
    """Dispatcher as deployed on ``engine``; the API's URL."""
    async with AsyncExitStack() as stack:
        if engine == "sqlite":
            serve = await stack.enter_async_context(running("serve", database_url, **env))
            yield serve.url
        else:
            api = await stack.enter_async_context(running("api", database_url, **env))
            await stack.enter_async_context(running("worker", database_url, **env))
            yield api.url


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def publish(session: aiohttp.ClientSession, api_url: str, event_type: str,
                  data: Any) -> dict[str, Any]:
    body = json.dumps({"type": event_type, "data": data}).encode()
    async with session.post(api_url + "/v1/events", data=body, headers=AUTH) as resp:
        answer = await resp.read()
        if resp.status != 202:
            raise RuntimeError(f"publishing answered {resp.status}: {answer[:500]!r}")
    return json.loads(answer)


async def arrivals(receiver: Receiver, wanted: set[str], deadline: float,
                   ) -> list[tuple[str | None, str, float]]:
    """The receiver's records once every id in ``wanted`` has arrived at least once."""
    seen: set[str | None] = set()
    try:
        async with asyncio.timeout(deadline):
            while True:
                records = await asyncio.to_thread(receiver.records)
                seen = {r[0] for r in records}
                if wanted <= seen:
                    return records
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise TimeoutError(f"{len(wanted - seen)} of {len(wanted)} events did not reach the "
                           f"receiver within {deadline:g} s") from None


# ---- latency -------------------------------------------------------------------------------

async def latency(engine: str, seconds: float = 10.0, rate: int = 200,
                  warmup: int = 20) -> Result:
    """Events at a steady ``rate`` for ``seconds`` (open loop), one subscription: the time
    from each 202 reaching the publisher to the request reaching the receiver.

    Raw differences of ``time.monotonic()`` read in two processes (the same clock): a value
    can be slightly negative when the worker delivers before the 202 has made its way back
    to the publisher; such values are kept as they are, not clipped. Every event must
    arrive at least once (a duplicate is allowed, at least once, and counted).
    """
    n = max(1, round(seconds * rate))
    receiver = Receiver(record=True)
    # The latency must come from wake-ups, not polling: the default poll interval, whatever
    # the environment says.
    poll = str(Settings.model_fields["poll_interval_seconds"].default)
    async with off_loop(receiver) as port, fresh_database(engine) as database_url:
        await make_subscriptions(database_url, [f"http://127.0.0.1:{port}/hook"],
                                 ["bench.*"], concurrency=1)
        async with deployment(engine, database_url, DISPATCHER_POLL_INTERVAL_SECONDS=poll) \
                as api_url, client() as session:
            # Warm-up, one after another, not measured: connections, caches, first claims.
            warm = {(await publish(session, api_url, "bench.warmup", {"i": i}))["id"]
                    for i in range(warmup)}
            await arrivals(receiver, warm, 30)
            await asyncio.to_thread(receiver.clear)
            answered, lags, accept_ms = await _open_loop(session, api_url, n, rate)
            records = await arrivals(receiver, set(answered), 30 + seconds)
    first: dict[str, float] = {}
    duplicates = 0
    for event_id, _path, arrived in records:
        if event_id in answered:
            if event_id in first:
                duplicates += 1
            else:
                first[event_id] = arrived
    ms = sorted((first[e] - answered[e]) * 1000 for e in answered)
    accept_ms.sort()
    return Result(f"latency ({engine})", n, CONCURRENCY, seconds, {
        "p50_ms": round(percentile(ms, 0.50), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(ms[-1], 2),
        "min_ms": round(ms[0], 2),
        "rate": rate,
        "duplicates": duplicates,
        # The publisher's view: request sent to 202 read, and how late sends were started.
        "accept_p50_ms": round(percentile(accept_ms, 0.50), 2),
        "accept_p99_ms": round(percentile(accept_ms, 0.99), 2),
        "send_lag_max_ms": round(max(lags) * 1000, 2),
    })


async def _open_loop(session: aiohttp.ClientSession, api_url: str, n: int, rate: int,
                     ) -> tuple[dict[str, float], list[float], list[float]]:
    """Request i at ``i / rate`` s from the start, each in a task of its own; (event id ->
    monotonic time its 202 was read, send lags in s, accept times in ms)."""
    answered: dict[str, float] = {}
    lags: list[float] = []
    accept_ms: list[float] = []

    async def one(i: int) -> None:
        sent = time.monotonic()
        event = await publish(session, api_url, "bench.latency", {"i": i})
        answered[event["id"]] = now = time.monotonic()
        accept_ms.append((now - sent) * 1000)

    tasks = []
    start = time.monotonic() + 0.05
    async with asyncio.timeout(n / rate + 60):
        try:
            for i in range(n):
                due = start + i / rate
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                lags.append(time.monotonic() - due)
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return answered, lags, accept_ms


# ---- fan-out -------------------------------------------------------------------------------

async def fanout(engine: str, subscriptions: int = 10_000) -> Result:
    """One event to ``subscriptions`` subscriptions (all to the receiver, one path each):
    seconds from sending the request until every delivery is ``succeeded``."""
    async with off_loop(Receiver()) as port, fresh_database(engine) as database_url:
        start = time.monotonic()
        await make_subscriptions(
            database_url, [f"http://127.0.0.1:{port}/hook/{i}" for i in range(subscriptions)],
            ["bench.fanout"], concurrency=4 if engine == "sqlite" else 16)
        setup = time.monotonic() - start
        async with deployment(engine, database_url) as api_url, client() as session:
            # Matches no subscription: warms the API's path without delivering anything.
            await publish(session, api_url, "bench.warmup", {})
            start = time.monotonic()
            event = await publish(session, api_url, "bench.fanout", {"order": 1})
            accepted = time.monotonic()
            if event["deliveries"] != subscriptions:
                raise RuntimeError(f"the event fanned out to {event['deliveries']} "
                                   f"subscriptions, not {subscriptions}")
            done = await wait_for_deliveries(database_url, subscriptions,
                                             deadline_for(subscriptions))
        attempts = await _count(database_url, sa.select(sa.func.count()).select_from(
            attempt_table).where(attempt_table.c.outcome == "succeeded"))
    if attempts != subscriptions:
        raise RuntimeError(f"{attempts} succeeded attempts recorded, not {subscriptions}")
    return Result(f"fan-out ({engine})", subscriptions, CONCURRENCY, done - start, {
        "accept_ms": round((accepted - start) * 1000, 1),
        "subscriptions_setup_seconds": round(setup, 2),
    })


async def _count(database_url: str, query: sa.Select[Any]) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(query) or 0
    finally:
        await engine.dispose()


# ---- backlog -------------------------------------------------------------------------------

async def backlog(engine: str, backlog: int = 1_000_000, measured: int = 20_000,
                  subscriptions: int = 1_000) -> list[Result]:
    """``measured`` deliveries by one ``dispatcher worker`` process with nothing else
    pending (``backlog-empty``), then with ``backlog`` pending (``backlog-1m``), each in a
    fresh database loaded in bulk (``benchmarks/bulk.py``) before the worker starts.

    The rate is counted from the worker's start-up line (the deliveries already succeeded
    by the first look at the database are left out of ``n``) to the first look that finds
    ``measured`` succeeded; RSS (``VmRSS``) and its peak (``VmHWM``) are read then.
    """
    results: list[Result] = []
    async with off_loop(Receiver()) as port:
        for name, total in (("backlog-empty", measured), ("backlog-1m", backlog)):
            async with fresh_database(engine) as database_url:
                owner, subs = await make_subscriptions(
                    database_url,
                    [f"http://127.0.0.1:{port}/hook/{i}" for i in range(subscriptions)],
                    ["bench.*"], concurrency=4 if engine == "sqlite" else 16)
                loaded = await load_backlog(database_url, owner, subs, total)
                result = await _drain(database_url, measured)
            result.name = f"{name} ({engine})"
            result.extra |= {"backlog": total} | {k: round(v, 2) for k, v in loaded.items()}
            results.append(result)
    empty, full = results
    full.extra["rate_vs_empty"] = round(full.per_second / empty.per_second, 3)
    return results


async def _drain(database_url: str, measured: int) -> Result:
    d = delivery_table
    query = sa.select(sa.func.count()).select_from(d).where(d.c.status == "succeeded")
    engine = create_async_engine(database_url)
    done = 0
    try:
        async with running("worker", database_url) as worker:
            async with asyncio.timeout(deadline_for(measured)):
                start, first = time.monotonic(), None
                while True:
                    async with engine.connect() as conn:
                        done = await conn.scalar(query) or 0
                    now = time.monotonic()
                    if first is None:
                        start, first = now, done
                    if done >= measured:
                        break
                    await asyncio.sleep(POLL_SECONDS)
            memory = worker.rss_bytes()
    except TimeoutError:
        raise TimeoutError(f"only {done} of {measured} deliveries succeeded within "
                           f"{deadline_for(measured):g} s") from None
    finally:
        await engine.dispose()
    if done - first < measured // 2:
        raise RuntimeError(f"{first} of {measured} were delivered before the first look: "
                           "measure more deliveries")
    return Result("backlog", done - first, CONCURRENCY, now - start, {
        "rss_mb": round(memory["rss"] / MB, 1),
        "peak_rss_mb": round(memory["hwm"] / MB, 1),
        "succeeded_at_start": first,
    })
