"""Scenarios of dispatcher as deployed: latency, fan-out, backlog (issue 6), the retry storm
and serve's worker processes (issue 16).

    .venv/bin/python -m benchmarks.run --only latency,fanout,backlog,storm,processes [--quick]

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
- ``storm``: latency's measurement twice on one deployment, one after the other: alone
  (``calm p99``), then with a retry storm under it (``storm p99``): 5,000 deliveries to 50
  subscriptions whose receiver answers 503, each failed once already, their retries due
  evenly over the first 5 s of the 10 s window (loaded in the 1 s before the window opens;
  the calm window waits as long).
- ``processes``: ``dispatcher serve`` on the defaults (``serve-default``) and with
  ``DISPATCHER_WORKER_PROCESSES=0`` (``serve-one-process``), 40,000 deliveries over 1,000
  subscriptions loaded before it starts, until all are ``succeeded``.

``--quick`` (2 s of latency, 300 subscriptions, a backlog of 20,000 with M = 2,000, a storm
of 1,000 over 1 s, serve on 3,000 over 100 subscriptions, SQLite only unless ``--engines``
says otherwise) runs in about a minute, for the test suite.
Results carry ``concurrency`` = the worker's ``WORKER_CONCURRENCY`` (the default, 64).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher.clock import utcnow
from dispatcher.config import Settings
from dispatcher.models import attempt_table, delivery_table

from .bulk import load_backlog, load_failed_once, make_subscriptions
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
# The storm part's windows (calm, then storm) open this long after what came before: time
# to load the storm (5,000 rows take a fraction of it).
STORM_LEAD_SECONDS = 1.0
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
    from each 202 reaching the publisher to the request reaching the receiver."""
    (result,) = await _latency(engine, [Window(f"latency ({engine})")], seconds, rate, warmup)
    return result


async def storm_latency(engine: str, seconds: float = 10.0, rate: int = 200,
                        storm: int = 5_000, storm_subscriptions: int = 50) -> list[Result]:
    """``latency``'s measurement twice on one deployment, one after the other: alone
    (``calm p99``), then with a retry storm under it (``storm p99``): ``storm`` deliveries to
    ``storm_subscriptions`` subscriptions whose receiver answers 503 at once, each already
    failed once, their retries coming due evenly over the first half of the window
    (``RetryStorm``). Both windows open ``STORM_LEAD_SECONDS`` after what came before."""
    retry_storm = RetryStorm(storm, storm_subscriptions, seconds / 2)
    calm, stormy = await _latency(
        engine, [Window(f"calm p99 ({engine})", STORM_LEAD_SECONDS),
                 Window(f"storm p99 ({engine})", STORM_LEAD_SECONDS, retry_storm)],
        seconds, rate, prepare=retry_storm.prepare)
    stormy.extra["p99_vs_calm"] = round(stormy.extra["p99_ms"] / calm.extra["p99_ms"], 2)
    return [calm, stormy]


class RetryStorm:
    """What the storm window adds: ``deliveries`` to ``subscriptions`` subscriptions of a
    receiver answering 503 (a process of its own), loaded just before the window as failed
    once (``bulk.load_failed_once``), their retries due evenly from the window's start over
    ``spread_seconds``. Each is attempted once in the window (the next retry is minutes
    away)."""

    def __init__(self, deliveries: int, subscriptions: int, spread_seconds: float) -> None:
        self.deliveries = deliveries
        self.subscriptions = subscriptions
        self.spread_seconds = spread_seconds
        self.owner = ""
        self.ids: list[str] = []

    async def prepare(self, database_url: str, stack: AsyncExitStack) -> None:
        """Before dispatcher starts: the failing receiver and its subscriptions (which no
        published event matches)."""
        port = await stack.enter_async_context(off_loop(Receiver(status=503)))
        self.owner, self.ids = await make_subscriptions(
            database_url, [f"http://127.0.0.1:{port}/s/{i}" for i in range(self.subscriptions)],
            ["bench.storm"], concurrency=4)

    async def start(self, database_url: str, window_start: datetime) -> dict[str, float]:
        load = await load_failed_once(database_url, self.owner, self.ids, self.deliveries,
                                      window_start, self.spread_seconds)
        return {"storm_load_seconds": round(load, 2)}

    async def figures(self, database_url: str) -> dict[str, Any]:
        """How many of the storm's retries were attempted by the end of the window."""
        a, d = attempt_table, delivery_table
        retried = await _count(database_url, sa.select(sa.func.count()).select_from(
            a.join(d, d.c.id == a.c.delivery_id)).where(
            d.c.subscription_id.in_(self.ids), a.c.number >= 2))
        return {"storm_deliveries": self.deliveries, "storm_subscriptions": self.subscriptions,
                "storm_spread_s": self.spread_seconds, "storm_attempts": retried}


@dataclass
class Window:
    """One measured window of a latency run: its result's name, how long after what came
    before it opens, and a retry storm to run under it."""

    name: str
    lead: float = 0.05
    storm: RetryStorm | None = None


async def _latency(engine: str, windows: list[Window], seconds: float, rate: int,
                   warmup: int = 20,
                   prepare: Callable[[str, AsyncExitStack], Awaitable[None]] | None = None,
                   ) -> list[Result]:
    """One deployment, warmed up, then each window in turn: events at ``rate`` for
    ``seconds`` to one subscription; ``prepare(database_url, stack)`` runs before dispatcher
    starts."""
    receiver = Receiver(record=True)
    # The latency must come from wake-ups, not polling: the default poll interval, whatever
    # the environment says.
    poll = str(Settings.model_fields["poll_interval_seconds"].default)
    async with AsyncExitStack() as stack:
        port = await stack.enter_async_context(off_loop(receiver))
        database_url = await stack.enter_async_context(fresh_database(engine))
        await make_subscriptions(database_url, [f"http://127.0.0.1:{port}/hook"],
                                 ["bench.*"], concurrency=1)
        if prepare is not None:
            await prepare(database_url, stack)
        api_url = await stack.enter_async_context(
            deployment(engine, database_url, DISPATCHER_POLL_INTERVAL_SECONDS=poll))
        session = await stack.enter_async_context(client())
        # Warm-up, one after another, not measured: connections, caches, first claims.
        warm = {(await publish(session, api_url, "bench.warmup", {"i": i}))["id"]
                for i in range(warmup)}
        await arrivals(receiver, warm, 30)
        return [await _window(window, receiver, session, api_url, database_url, seconds, rate)
                for window in windows]


async def _window(window: Window, receiver: Receiver, session: aiohttp.ClientSession,
                  api_url: str, database_url: str, seconds: float, rate: int) -> Result:
    """One window: the time from each 202 reaching the publisher to the request reaching
    the receiver.

    Raw differences of ``time.monotonic()`` read in two processes (the same clock): a value
    can be slightly negative when the worker delivers before the 202 has made its way back
    to the publisher; such values are kept as they are, not clipped. Every event must
    arrive at least once (a duplicate is allowed, at least once, and counted).
    """
    n = max(1, round(seconds * rate))
    also: dict[str, Any] = {}
    await asyncio.to_thread(receiver.clear)
    start = time.monotonic() + window.lead
    if window.storm is not None:
        window_start = utcnow() + timedelta(seconds=start - time.monotonic())
        also |= await window.storm.start(database_url, window_start)
        if time.monotonic() > start:
            raise RuntimeError(f"loading the storm took longer than the {window.lead:g} s lead")
    answered, lags, accept_ms = await _open_loop(session, api_url, n, rate, start)
    records = await arrivals(receiver, set(answered), 30 + seconds)
    if window.storm is not None:
        also |= await window.storm.figures(database_url)
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
    return Result(window.name, n, CONCURRENCY, seconds, {
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
    } | also)


async def _open_loop(session: aiohttp.ClientSession, api_url: str, n: int, rate: int,
                     start: float) -> tuple[dict[str, float], list[float], list[float]]:
    """Request i at ``start + i / rate`` (monotonic), each in a task of its own; (event id ->
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
    async with asyncio.timeout(max(0.0, start - time.monotonic()) + n / rate + 60):
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
    ``measured`` succeeded; RSS (``VmRSS``) and its peak (``VmHWM``) are read then (``drain``).
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
                result = await drain(database_url, measured)
            result.name = f"{name} ({engine})"
            result.extra |= {"backlog": total} | {k: round(v, 2) for k, v in loaded.items()}
            results.append(result)
    empty, full = results
    full.extra["rate_vs_empty"] = round(full.per_second / empty.per_second, 3)
    return results


async def drain(database_url: str, measured: int, command: str = "worker", **env: str
                ) -> Result:
    """``dispatcher COMMAND`` (``worker`` or ``serve``) started on pending deliveries until
    ``measured`` are ``succeeded``: the rate from its first look at the database (the
    deliveries already succeeded then are left out of ``n``), and the memory of the process
    and those it started (``processes``) at the end."""
    d = delivery_table
    query = sa.select(sa.func.count()).select_from(d).where(d.c.status == "succeeded")
    engine = create_async_engine(database_url)
    done = 0
    try:
        async with running(command, database_url, **env) as worker:
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
    return Result(f"dispatcher {command}", done - first, CONCURRENCY, now - start, {
        "rss_mb": round(memory["rss"] / MB, 1),
        "peak_rss_mb": round(memory["hwm"] / MB, 1),
        "succeeded_at_start": first,
        "processes": memory["processes"],
    })


# ---- serve's worker processes --------------------------------------------------------------

async def serve_processes(engine: str, deliveries: int = 40_000, subscriptions: int = 1_000
                          ) -> list[Result]:
    """``dispatcher serve`` on the defaults (``serve-default``: its worker processes as many
    as the default says) and with ``DISPATCHER_WORKER_PROCESSES=0`` (``serve-one-process``:
    the API's own worker only), each on ``deliveries`` pending over ``subscriptions``
    subscriptions loaded before it starts: the rate until all are ``succeeded`` (``drain``).
    Until the setting exists both are one process (an unknown variable is ignored)."""
    results = []
    async with off_loop(Receiver()) as port:
        for name, env in ((f"serve-default ({engine})", {}),
                          (f"serve-one-process ({engine}, WORKER_PROCESSES=0)",
                           {"DISPATCHER_WORKER_PROCESSES": "0"})):
            async with fresh_database(engine) as database_url:
                owner, subs = await make_subscriptions(
                    database_url, [f"http://127.0.0.1:{port}/s/{i}" for i in range(subscriptions)],
                    ["bench.*"], concurrency=4 if engine == "sqlite" else 16)
                loaded = await load_backlog(database_url, owner, subs, deliveries)
                result = await drain(database_url, deliveries, "serve", **env)
            result.name = name
            result.extra |= {"subscriptions": subscriptions} | {
                k: round(v, 2) for k, v in loaded.items()}
            results.append(result)
    default, one = results
    default.extra["rate_vs_one_process"] = round(default.per_second / one.per_second, 3)
    return results
