"""How fast dispatcher accepts events, next to a FastAPI endpoint that stores nothing.

    .venv/bin/python -m benchmarks.ingest [--quick] [--n N] [--concurrency C]
                                          [--engines sqlite,postgresql] [--json out.json]

One load generator (``benchmarks/load.py``: aiohttp, a process of its own, a warm-up of C
requests, then N timed requests by C tasks; every answer must be 202) against:

- ``bare-fastapi``: ``benchmarks/bare_app.py``, one route that validates the body with the
  real ``EventIn`` model and answers 202 without storing anything, served by uvicorn as
  ``dispatcher api`` is served;
- ``dispatcher-ingest (<engine>)``: ``dispatcher api`` on a fresh migrated database with a
  publisher key and 10 subscriptions (made through the HTTP API with the admin token), each
  event fanning out to all 10. Only the API runs: ingest is measured alone, no delivery
  worker competes for the CPU or the database (the subscriptions point at 127.0.0.1, and
  nothing is delivered). Afterwards the API process is killed (SIGKILL) and the database
  must hold every accepted event, warm-up included, each with its 10 deliveries: what was
  answered 202 was committed before the answer.

The figure that matters is the ratio ``dispatcher-ingest / bare-fastapi`` within one run
(the issue's target: at least 0.5). ``--quick`` (N=300, C=32, SQLite only) takes a few
seconds, for ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher.models import delivery_table, event_table

from .bare_app import BareApp
from .common import (
    ADMIN_TOKEN,
    DispatcherProcess,
    Result,
    deadline_for,
    fresh_database,
    postgres_problem,
)
from .load import run_load

SUBSCRIPTIONS = 10
EVENT_TYPE = "bench.ingest"
# A small, realistic event; {i} is the request number (load.py), so every event differs.
BODY = ('{"type": "' + EVENT_TYPE + '", "data": {"order_id": "ord_{i}", "amount": 4200, '
        '"currency": "EUR", "customer": {"id": "cus_17", "email": "a@example.com"}}}')


def _result(name: str, found: dict[str, Any]) -> Result:
    extra = {k: found[k] for k in ("p50_ms", "p99_ms", "max_ms", "warmup", "statuses")}
    return Result(name, found["n"], found["concurrency"], found["seconds"], extra)


async def bare_fastapi(n: int, c: int) -> Result:
    """N events posted to the bare FastAPI endpoint, C at a time."""
    bare = BareApp()
    url = await asyncio.to_thread(bare.__enter__)
    try:
        found = await run_load(url, n, c, body=BODY, deadline=deadline_for(n))
    finally:
        await asyncio.to_thread(bare.__exit__)
    return _result("bare-fastapi", found)


async def dispatcher_ingest(engine: str, n: int, c: int) -> Result:
    """N events posted to ``dispatcher api`` on ``engine``, C at a time, each fanning out to
    10 subscriptions; then the proof that all of them were committed."""
    async with fresh_database(engine) as database_url:
        api = DispatcherProcess("api", database_url)
        await asyncio.to_thread(api.__enter__)
        try:
            key = await _set_up(api.url)
            found = await run_load(
                api.url + "/v1/events", n, c, body=BODY, deadline=deadline_for(n),
                headers={"authorization": f"Bearer {key}"})
            # Killed at once, no shutdown: only what was committed is in the database.
            api.process.kill()  # type: ignore[union-attr]
            await asyncio.to_thread(api.process.wait, 30)  # type: ignore[union-attr]
        finally:
            await asyncio.to_thread(api.__exit__)
        sample = json.loads(found["sample"])
        if sample.get("deliveries") != SUBSCRIPTIONS:
            raise RuntimeError(f"an event fanned out to {sample.get('deliveries')} "
                               f"subscriptions, not {SUBSCRIPTIONS}: {found['sample']}")
        await check_stored(database_url, n + found["warmup"])
    return _result(f"dispatcher-ingest ({engine})", found)


async def _set_up(url: str) -> str:
    """A publisher key and the subscriptions, through the API as the admin; the key."""
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=admin, timeout=30) as client:
        made = await client.post("/v1/api-keys", json={"role": "publisher", "name": "bench"})
        made.raise_for_status()
        for i in range(SUBSCRIPTIONS):
            # Never called: no worker runs. A closed port on 127.0.0.1 all the same.
            answer = await client.post("/v1/subscriptions", json={
                "url": f"http://127.0.0.1:9/hook/{i}", "event_types": ["bench.*"]})
            answer.raise_for_status()
    return made.json()["key"]


async def check_stored(database_url: str, events: int) -> None:
    """Exactly ``events`` events, each with its ``SUBSCRIPTIONS`` pending deliveries."""
    e, d = event_table, delivery_table
    per_event = (sa.select(d.c.event_id).group_by(d.c.event_id)
                 .having(sa.func.count() != SUBSCRIPTIONS).subquery())
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored = await conn.scalar(sa.select(sa.func.count()).select_from(e))
            deliveries = await conn.scalar(
                sa.select(sa.func.count()).select_from(d).where(d.c.status == "pending"))
            uneven = await conn.scalar(sa.select(sa.func.count()).select_from(per_event))
    finally:
        await engine.dispose()
    if stored != events or deliveries != events * SUBSCRIPTIONS or uneven:
        raise RuntimeError(
            f"accepted {events} events with {SUBSCRIPTIONS} deliveries each, but the database "
            f"holds {stored} events and {deliveries} pending deliveries ({uneven} events "
            f"without exactly {SUBSCRIPTIONS})")


# ---- the run -------------------------------------------------------------------------------

def ratios(results: list[Result]) -> list[tuple[str, int, float]]:
    """(``dispatcher-ingest (engine) / bare-fastapi``, concurrency, ratio of requests/s)."""
    out = []
    for c in sorted({r.concurrency for r in results}):
        rate = {r.name: r.per_second for r in results if r.concurrency == c}
        if "bare-fastapi" in rate:
            out += [(f"{name} / bare-fastapi", c, value / rate["bare-fastapi"])
                    for name, value in rate.items() if name.startswith("dispatcher-ingest")]
    return out


async def measure(n: int, c: int, engines: list[str], report: Any) -> list[Result]:
    if "postgresql" in engines and (problem := await postgres_problem()):
        print(f"PostgreSQL SKIPPED: it does not answer ({problem})")
        engines = [e for e in engines if e != "postgresql"]
    results = [await bare_fastapi(n, c)]
    report(results[-1])
    for engine in engines:
        results.append(await dispatcher_ingest(engine, n, c))
        report(results[-1])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="N=300, concurrency 32, SQLite only (seconds; for make test)")
    parser.add_argument("--n", type=int, default=None,
                        help="timed requests per run (default 2000; 300 with --quick)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--engines", default=None,
                        help="comma-separated: sqlite,postgresql (default both; "
                        "sqlite with --quick)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    n = args.n or (300 if args.quick else 2000)
    engines = (args.engines or ("sqlite" if args.quick else "sqlite,postgresql")).split(",")
    if n < 1 or args.concurrency < 1:
        parser.error("--n and --concurrency must be positive")
    if unknown := set(engines) - {"sqlite", "postgresql"}:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    print(f"{'name':<32} {'N':>7} {'conc':>5} {'seconds':>8} {'per second':>11} "
          f"{'p50 ms':>7} {'p99 ms':>7}")

    def report(r: Result) -> None:
        print(f"{r.name:<32} {r.n:>7} {r.concurrency:>5} {r.seconds:>8.3f} "
              f"{r.per_second:>11,.0f} {r.extra['p50_ms']:>7.1f} {r.extra['p99_ms']:>7.1f}",
              flush=True)

    results = asyncio.run(measure(n, args.concurrency, engines, report))
    found = ratios(results)
    if found:
        print("\nratios (requests per second; the target is at least 0.5)")
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
