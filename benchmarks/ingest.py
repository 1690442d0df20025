"""How fast dispatcher accepts events, next to a FastAPI endpoint that stores nothing.

    .venv/bin/python -m benchmarks.run --only ingest [--quick] [--engines sqlite,postgresql]

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

- ``ingest-without-key (<engine>)`` and ``ingest-with-key (<engine>)``: on one ``dispatcher
  api`` and database, R alternating rounds of N events, without an ``Idempotency-Key`` and
  with a unique one on every event (as careful publishers send; the key is looked up and
  claimed inside the group commit); each row's figure is its median round, so that the
  machine's noise hits both alike. Afterwards: every event once, each with its deliveries.

- ``ingest-unfiltered (<engine>)`` and ``ingest-filtered (<engine>)`` (part ``filters``):
  on one ``dispatcher api`` and database, 1,000 subscriptions to one event type and 1,000
  to another (100 each with ``--quick``), these each with a filter of three conditions that
  every event matches (so both fan out to all and only the filters differ); R alternating
  rounds of N events of each type, each row's figure its median round.

- ``ingest-unvalidated (<engine>)`` and ``ingest-validated (<engine>)``: the same, with the
  same events of a type the catalog does not know and of one with a JSON Schema of eleven
  rules (``BENCH_SCHEMA``) that every event's data is checked against.

The figures that matter are the ratios ``dispatcher-ingest / bare-fastapi`` within one run
(issue 6's target: at least 0.5), ``ingest-with-key / ingest-without-key`` (issue 16's:
at least 0.8), ``ingest-validated / ingest-unvalidated`` (issue 18's: at least 0.8) and
``ingest-filtered / ingest-unfiltered`` (issue 17's: at least 0.7),
which ``benchmarks/report.py`` computes.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher.models import delivery_table, event_table

from .bare_app import BareApp
from .bulk import make_subscriptions
from .common import (
    ADMIN_TOKEN,
    DispatcherProcess,
    Result,
    deadline_for,
    fresh_database,
)
from .load import run_load

SUBSCRIPTIONS = 10
EVENT_TYPE = "bench.ingest"


def body_of(event_type: str) -> str:
    """A small, realistic event; {i} is the request number (load.py), so every event
    differs."""
    return ('{"type": "' + event_type + '", "data": {"order_id": "ord_{i}", "amount": 4200, '
            '"currency": "EUR", "customer": {"id": "cus_17", "email": "a@example.com"}}}')


BODY = body_of(EVENT_TYPE)
FILTERED = 1_000  # subscriptions per kind in the filters part


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


async def idempotent_ingest(engine: str, n: int, c: int, rounds: int) -> list[Result]:
    """``ingest-without-key`` and ``ingest-with-key`` on ``engine``: ``rounds`` alternating
    rounds of N events at C on one API process; each row's seconds are its median round's."""
    # A key of its own per event and round: every request makes an event.
    return await _alternating(engine, n, c, rounds, {
        "without-key": lambda r: (BODY, {}),
        "with-key": lambda r: (BODY, {"idempotency-key": f"bench-{r}-{{i}}"})})


# What ``BODY``'s data is, as the catalog's schema of ``bench.validated`` says it: eleven
# rules, as a publisher would write them.
BENCH_SCHEMA = {
    "type": "object", "required": ["order_id", "amount", "currency", "customer"],
    "additionalProperties": False,
    "properties": {
        "order_id": {"type": "string", "pattern": "^ord_[0-9]+$"},
        "amount": {"type": "integer", "minimum": 0},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
        "customer": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string"}, "email": {"type": "string", "maxLength": 254}}}}}


async def validated_ingest(engine: str, n: int, c: int, rounds: int) -> list[Result]:
    """``ingest-unvalidated`` and ``ingest-validated`` on ``engine``: the same events, of a
    type with no entry in the catalog and of one with ``BENCH_SCHEMA``, in ``rounds``
    alternating rounds of N at C on one API process; each row's seconds its median round's."""
    return await _alternating(engine, n, c, rounds, {
        "unvalidated": lambda r: (body_of("bench.unvalidated"), {}),
        "validated": lambda r: (body_of("bench.validated"), {})},
        catalog={"bench.validated": BENCH_SCHEMA})


async def _alternating(engine: str, n: int, c: int, rounds: int,
                       kinds: dict[str, Callable[[int], tuple[str, dict[str, str]]]],
                       catalog: dict[str, Any] | None = None) -> list[Result]:
    """Rows ``ingest-<kind> (<engine>)``: on one fresh API process and database (with
    ``catalog``'s schemas put), ``rounds`` rounds of N events at C of each kind in turn,
    each kind giving the body and headers of round r; every event accepted must be stored
    with its deliveries."""
    if rounds < 1 or rounds % 2 == 0:
        raise ValueError("rounds must be odd, so that the median is a round's figure")
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    accepted = 0
    async with fresh_database(engine) as database_url:
        api = DispatcherProcess("api", database_url)
        await asyncio.to_thread(api.__enter__)
        try:
            key = await _set_up(api.url, catalog=catalog or {})
            auth = {"authorization": f"Bearer {key}"}
            for r in range(rounds):
                for kind, make in kinds.items():
                    body, headers = make(r)
                    found = await run_load(api.url + "/v1/events", n, c, body=body,
                                           headers=auth | headers, deadline=deadline_for(n))
                    seconds[kind].append(found["seconds"])
                    accepted += n + found["warmup"]
            api.process.kill()  # type: ignore[union-attr]
            await asyncio.to_thread(api.process.wait, 30)  # type: ignore[union-attr]
        finally:
            await asyncio.to_thread(api.__exit__)
        await check_stored(database_url, accepted)
    return [Result(f"ingest-{kind} ({engine})", n, c, statistics.median(seconds[kind]),
                   {"rounds": rounds, "round_rates": [round(n / s) for s in seconds[kind]]})
            for kind in kinds]


def passing_filter(k: int) -> dict[str, Any]:
    """The k-th subscription's filter: three conditions ``BODY``'s data always meets."""
    return {"data.amount": {"$gte": k}, "data.currency": {"$in": ["EUR", "USD"]},
            "data.customer.id": {"$exists": True}}


async def filtered_ingest(engine: str, n: int, c: int, rounds: int,
                          subscriptions: int = FILTERED) -> list[Result]:
    """``ingest-unfiltered`` and ``ingest-filtered`` on ``engine``: ``rounds`` alternating
    rounds of N events at C on one API process, each fanning out to ``subscriptions``
    subscriptions; each row's seconds are its median round's."""
    if rounds < 1 or rounds % 2 == 0:
        raise ValueError("rounds must be odd, so that the median is a round's figure")
    kinds = {"unfiltered": "bench.plain", "filtered": "bench.filtered"}
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    async with fresh_database(engine) as database_url:
        # Never called: no worker runs. A closed port on 127.0.0.1 all the same.
        urls = [f"http://127.0.0.1:9/hook/{i}" for i in range(subscriptions)]
        await make_subscriptions(database_url, urls, [kinds["unfiltered"]])
        await make_subscriptions(database_url, urls, [kinds["filtered"]],
                                 filters=[passing_filter(k) for k in range(subscriptions)])
        api = DispatcherProcess("api", database_url)
        await asyncio.to_thread(api.__enter__)
        try:
            key = await _set_up(api.url, subscriptions=0)
            auth = {"authorization": f"Bearer {key}"}
            for _ in range(rounds):
                for kind, event_type in kinds.items():
                    found = await run_load(api.url + "/v1/events", n, c,
                                           body=body_of(event_type), headers=auth,
                                           deadline=deadline_for(n * 20))
                    if json.loads(found["sample"]).get("deliveries") != subscriptions:
                        raise RuntimeError(f"a {kind} event did not fan out to "
                                           f"{subscriptions}: {found['sample']}")
                    seconds[kind].append(found["seconds"])
        finally:
            await asyncio.to_thread(api.__exit__)
    return [Result(f"ingest-{kind} ({engine})", n, c, statistics.median(seconds[kind]),
                   {"rounds": rounds, "subscriptions": subscriptions,
                    "round_rates": [round(n / s, 1) for s in seconds[kind]]})
            for kind in kinds]


async def _set_up(url: str, subscriptions: int = SUBSCRIPTIONS,
                  catalog: dict[str, Any] | None = None) -> str:
    """A publisher key, the subscriptions and ``catalog``'s schemas (type -> schema), through
    the API as the admin; the key."""
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=admin, timeout=30) as client:
        made = await client.post("/v1/api-keys", json={"role": "publisher", "name": "bench"})
        made.raise_for_status()
        for event_type, schema in (catalog or {}).items():
            (await client.put(f"/v1/event-types/{event_type}",
                              json={"schema": schema})).raise_for_status()
        for i in range(subscriptions):
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
