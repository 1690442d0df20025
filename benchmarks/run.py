"""How fast dispatcher delivers, next to the HTTP clients it is built on.

    .venv/bin/python -m benchmarks.run [--quick] [--n N] [--concurrency C ...]
                                       [--engines sqlite,postgresql] [--json out.json]

Against one minimal receiver (``benchmarks/receiver.py``, a process of its own), for each
concurrency C:

1. ``bare-httpx``: ``httpx.AsyncClient`` (its own transport, limits = C), N POSTs;
2. ``bare-aiohttp``: ``aiohttp.ClientSession`` (connector limit = C), N POSTs;
3. ``httpx-over-aiohttp``: dispatcher's own client (``transport.make_http_client``), N POSTs;
4. ``dispatcher-accept`` / ``dispatcher-delivery`` per engine: a fresh migrated database,
   one subscription to the receiver, N events accepted by ``Store.accept_event`` (timed,
   one after another) before a ``Worker`` starts, then the time until all N deliveries are
   ``succeeded``.

1-3 share one driver: C tasks pulling request numbers from a shared counter, after a
warm-up of C requests (not timed) that opens the connections. ``--quick`` (N=500, C=32,
SQLite only) is small enough to run with the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

import aiohttp
import httpx

from dispatcher.config import Settings
from dispatcher.database import open_database
from dispatcher.store import Store
from dispatcher.transport import make_http_client
from dispatcher.worker import Worker

from .common import Result, deadline_for, fresh_database, postgres_problem, wait_for_deliveries
from .receiver import Receiver

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
    settings = Settings(allow_private_targets=True, http_transport="aiohttp",
                        http_max_connections=c)
    async with make_http_client(settings) as client:
        async def post(i: int) -> int:
            return (await client.post(url, content=body(i), headers=HEADERS)).status_code

        return Result("httpx-over-aiohttp", n, c, await timed_posts(post, n, c))


# ---- 4: dispatcher, end to end -------------------------------------------------------------

async def dispatcher_delivery(url: str, n: int, c: int, database_url: str,
                              engine: str) -> list[Result]:
    settings = Settings(
        database_url=database_url, allow_private_targets=True, http_transport="aiohttp",
        http_max_connections=c, worker_concurrency=c,
        # One subscription: without this its cap (16 by default) would be the concurrency.
        max_in_flight_per_subscription=c,
    )
    db = open_database(settings)
    store = Store(db)
    client = make_http_client(settings)
    try:
        await store.create_subscription("key_bench", {"url": url, "event_types": ["*"]})
        start = time.perf_counter()
        async with asyncio.timeout(deadline_for(n)):
            for i in range(n):
                await store.accept_event("key_bench", "bench.ping", {"i": i}, None, 3600)
        accepted = Result(f"dispatcher-accept ({engine})", n, 1, time.perf_counter() - start)

        worker = Worker(store, client, settings)
        start = time.perf_counter()
        task = asyncio.create_task(worker.run(), name="bench-worker")
        try:
            waiting = asyncio.create_task(
                wait_for_deliveries(database_url, n, deadline_for(n)))
            await asyncio.wait([waiting, task], return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                task.result()  # raises what stopped the worker
                raise RuntimeError("the worker stopped before delivering everything")
            await waiting
            seconds = time.perf_counter() - start
        finally:
            worker.stop()
            try:
                await asyncio.wait_for(task, 30)
            except TimeoutError:
                pass  # wait_for has cancelled it
        return [accepted, Result(f"dispatcher-delivery ({engine})", n, c, seconds)]
    finally:
        await client.aclose()
        await db.dispose()


async def on_engine(url: str, n: int, c: int, engine: str) -> list[Result]:
    async with fresh_database(engine) as database_url:
        return await dispatcher_delivery(url, n, c, database_url, engine)


# ---- the run -------------------------------------------------------------------------------

def ratios(results: list[Result]) -> list[tuple[str, int, float]]:
    """(description, concurrency, ratio of deliveries or requests per second)."""
    out = []
    for c in sorted({r.concurrency for r in results}):
        rate = {r.name: r.per_second for r in results if r.concurrency == c}
        pairs = [("httpx-over-aiohttp", "bare-httpx"), ("httpx-over-aiohttp", "bare-aiohttp")]
        pairs += [(name, base) for name in rate if name.startswith("dispatcher-delivery")
                  for base in ("bare-httpx", "bare-aiohttp", "httpx-over-aiohttp")]
        out += [(f"{a} / {b}", c, rate[a] / rate[b]) for a, b in pairs
                if a in rate and b in rate]
    return out


async def measure(port: int, n: int, concurrencies: list[int], engines: list[str],
                  report: Callable[[Result], None]) -> list[Result]:
    url = f"http://127.0.0.1:{port}/hook"
    if "postgresql" in engines and (problem := await postgres_problem()):
        print(f"PostgreSQL SKIPPED: it does not answer ({problem})")
        engines = [e for e in engines if e != "postgresql"]
    results: list[Result] = []

    def keep(*found: Result) -> None:
        for r in found:
            results.append(r)
            report(r)

    for c in concurrencies:
        keep(await bare_httpx(url, n, c))
        keep(await bare_aiohttp(url, n, c))
        keep(await httpx_over_aiohttp(url, n, c))
        for engine in engines:
            keep(*await on_engine(url, n, c, engine))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="N=500, concurrency 32, SQLite only (seconds; for make test)")
    parser.add_argument("--n", type=int, default=None, help="requests / events per run "
                        "(default 5000; 500 with --quick)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=None,
                        help="one or more concurrencies (default 64; 32 with --quick)")
    parser.add_argument("--engines", default=None,
                        help="comma-separated: sqlite,postgresql (default both; "
                        "sqlite with --quick)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    n = args.n or (500 if args.quick else 5000)
    concurrencies = args.concurrency or ([32] if args.quick else [64])
    engines = (args.engines or ("sqlite" if args.quick else "sqlite,postgresql")).split(",")
    if n < 1 or any(c < 1 for c in concurrencies):
        parser.error("--n and --concurrency must be positive")
    if unknown := set(engines) - {"sqlite", "postgresql"}:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    print(f"{'name':<32} {'N':>7} {'conc':>5} {'seconds':>8} {'per second':>11}")

    def report(r: Result) -> None:
        print(f"{r.name:<32} {r.n:>7} {r.concurrency:>5} {r.seconds:>8.3f} "
              f"{r.per_second:>11,.0f}", flush=True)

    with Receiver() as port:
        results = asyncio.run(measure(port, n, concurrencies, engines, report))
    found = ratios(results)
    if found:
        print("\nratios (per-second rates)")
        for what, c, value in found:
            print(f"  {what:<54} C={c:<4} {value:6.2f}")
    if args.json:
        args.json.write_text(json.dumps({
            "results": [asdict(r) | {"per_second": r.per_second} for r in results],
            "ratios": [{"ratio": w, "concurrency": c, "value": v} for w, c, v in found],
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
