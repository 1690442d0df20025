"""Delivery throughput: dispatcher next to the HTTP clients it is built on.

Against one minimal receiver (``benchmarks/receiver.py``, a process of its own), at
concurrency C, N requests or deliveries each:

- ``bare-httpx``: ``httpx.AsyncClient`` with its own transport (limits = C): what a naive
  implementation gets;
- ``bare-aiohttp``: ``aiohttp.ClientSession`` (connector limit = C): the practical limit of
  Python;
- ``httpx-over-aiohttp``: dispatcher's own call, ``sender.send`` with the client of
  ``transport.make_http_client``: the ceiling of a delivery without the database;
- ``dispatcher-delivery (engine, WORKER_CONCURRENCY=C, HTTP_MAX_CONNECTIONS=C)``: N
  deliveries pending for one subscription in a fresh database, a ``Worker`` with
  concurrency C (and as many connections) until all are ``succeeded`` with their attempts
  recorded; every other setting is the default (the per-subscription cap among them).

The three clients share one driver: C tasks pulling request numbers from a shared counter,
after a warm-up of C requests (not timed) that opens the connections. Everything runs in
this process on the event loop that production uses (uvloop).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

from dispatcher.config import Settings
from dispatcher.database import open_database
from dispatcher.sender import send
from dispatcher.store import Store
from dispatcher.transport import make_http_client
from dispatcher.worker import Worker

from .bulk import load_backlog, make_subscriptions
from .common import (
    Result,
    count_deliveries,
    count_rows,
    deadline_for,
    fresh_database,
    wait_for_deliveries,
)

HEADERS = {"content-type": "application/json"}


def body(i: int) -> bytes:
    return json.dumps({"type": "bench.ping", "data": {"i": i}}).encode()


# ---- the shared driver ---------------------------------------------------------------------

async def post_n(post: Callable[[int], Awaitable[int]], n: int, concurrency: int) -> float:
    """``post(i)`` for i in 0..n-1 by ``concurrency`` tasks; seconds taken. Every answer
    must be 200."""
    counter = iter(range(n))
    bad: list[int] = []

    async def pull() -> None:
        for i in counter:  # shared: each number is taken by exactly one task
            status = await post(i)
            if status != 200:
                bad.append(status)

    async def run(tasks: int) -> None:
        async with asyncio.timeout(deadline_for(n)):
            await asyncio.gather(*(pull() for _ in range(tasks)))

    start = time.perf_counter()
    await run(concurrency)
    seconds = time.perf_counter() - start
    if bad:
        raise RuntimeError(f"{len(bad)} of {n} answers were not 200 (e.g. {bad[0]})")
    return seconds


async def timed_posts(post: Callable[[int], Awaitable[int]], n: int, concurrency: int) -> float:
    await post_n(post, concurrency, concurrency)  # warm-up: open the connections
    return await post_n(post, n, concurrency)


# ---- 1-3: the clients ----------------------------------------------------------------------

async def bare_httpx(url: str, n: int, c: int) -> Result:
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(limits=limits) as client:
        async def post(i: int) -> int:
            return (await client.post(url, content=body(i), headers=HEADERS)).status_code

        return Result("bare-httpx", n, c, await timed_posts(post, n, c))


async def bare_aiohttp(url: str, n: int, c: int) -> Result:
    connector = aiohttp.TCPConnector(limit=c, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def post(i: int) -> int:
            async with session.post(url, data=body(i), headers=HEADERS) as resp:
                await resp.read()
                return resp.status

        return Result("bare-aiohttp", n, c, await timed_posts(post, n, c))


async def httpx_over_aiohttp(url: str, n: int, c: int) -> Result:
    """dispatcher's own call: ``sender.send`` through ``make_http_client`` (httpx over the
    httpx-aiohttp transport): signed, under the attempt deadline, at most 4 KiB read."""
    settings = Settings(allow_private_targets=True, http_transport="aiohttp",
                        http_max_connections=c)
    keys = [b"k" * 32]
    async with make_http_client(settings) as client:
        async def post(i: int) -> int:
            answer = await send(client, url, f"evt_{i}", body(i), keys, {},
                                settings.delivery_timeout_seconds)
            return answer.status_code or 0

        return Result("httpx-over-aiohttp", n, c, await timed_posts(post, n, c))


# ---- 4: dispatcher, end to end -------------------------------------------------------------

def delivery_name(engine: str, c: int, transport: str = "aiohttp") -> str:
    """``dispatcher-delivery``'s name at C: it runs on the defaults but for the settings it
    names (those that put it at the bare clients' concurrency, and a transport not the
    default)."""
    changed = [f"WORKER_CONCURRENCY={c}", f"HTTP_MAX_CONNECTIONS={c}"]
    if transport != Settings.model_fields["http_transport"].default:
        changed.insert(0, f"HTTP_TRANSPORT={transport}")
    return f"dispatcher-delivery ({engine}, {', '.join(changed)})"


async def dispatcher_delivery(url: str, n: int, c: int, engine: str,
                              transport: str = "aiohttp") -> Result:
    """N deliveries pending (bulk-loaded as ``accept_event`` writes them, one subscription),
    then a ``Worker`` (what ``dispatcher worker`` runs) with concurrency C: seconds until all
    are ``succeeded``, their attempts committed."""
    async with fresh_database(engine) as database_url:
        settings = Settings(database_url=database_url, allow_private_targets=True,
                            http_transport=transport, http_max_connections=c,
                            worker_concurrency=c)
        owner, subs = await make_subscriptions(database_url, [url], ["bench.*"])
        await load_backlog(database_url, owner, subs, n)
        seconds, _ = await run_worker(settings, n)
        attempts = await count_rows(database_url, "attempt")
        if attempts != n:
            raise RuntimeError(f"{attempts} attempts recorded for {n} deliveries")
    return Result(delivery_name(engine, c, transport), n, c, seconds)


def on_defaults(database_url: str) -> Settings:
    """The settings a user gets, on ``database_url``; private targets allowed (every
    receiver is on 127.0.0.1)."""
    return Settings(database_url=database_url, allow_private_targets=True)


async def run_worker(settings: Settings, succeeded: int,
                     before_stop: Callable[[], Awaitable[object]] | None = None,
                     give_up_after: float | None = None) -> tuple[float, int]:
    """A ``Worker`` (what ``dispatcher worker`` runs, here in this process) on ``settings``
    from now until ``succeeded`` deliveries of its database are ``succeeded``: (the seconds
    that took, ``succeeded``). With ``give_up_after``, it is stopped then if it has not got
    there: (``give_up_after``, how many were succeeded by then). Then ``before_stop()``
    (e.g. ending receivers that hold attempts open), and the worker is stopped (waited for
    at most 60 s)."""
    db = open_database(settings)
    client = make_http_client(settings)
    deadline = deadline_for(succeeded) if give_up_after is None else give_up_after
    try:
        worker = Worker(Store(db), client, settings)
        start = time.perf_counter()
        task = asyncio.create_task(worker.run(), name="bench-worker")
        try:
            waiting = asyncio.create_task(wait_for_deliveries(
                settings.database_url, succeeded, deadline))
            await asyncio.wait([waiting, task], return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                task.result()  # raises what stopped the worker
                raise RuntimeError("the worker stopped before delivering everything")
            done = succeeded
            try:
                await waiting
            except TimeoutError:
                if give_up_after is None:
                    raise
                done = await count_deliveries(settings.database_url, "succeeded")
            seconds = time.perf_counter() - start
            if before_stop is not None:
                await before_stop()
        finally:
            worker.stop()
            try:
                await asyncio.wait_for(task, 60)
            except TimeoutError:
                pass  # wait_for has cancelled it
    finally:
        await client.aclose()
        await db.dispose()
    return seconds, done
