"""How one worker shares itself among subscriptions (issue 16): a busy one, slow receivers,
dead receivers; and what one ordered subscription reaches (issue 17).

    .venv/bin/python -m benchmarks.run --only busy,slow,dead,ordered [--quick] [--engines ...]

Every run is on the defaults (``Settings(database_url=..., allow_private_targets=True)``:
the receivers are on 127.0.0.1), in a fresh database whose deliveries are loaded in bulk
(``benchmarks/bulk.py``) before the worker starts; each receiver is a process of its own
(``benchmarks/receiver.py``).

- ``busy``: ``busy-subscription``, N deliveries (20,000) for one subscription, and
  ``spread-subscriptions``, the same N over 1,000 subscriptions (paths /s/0 ... /s/999) of
  the same receiver; a ``Worker`` in this process (what ``dispatcher worker`` runs) until all
  are ``succeeded``.
- ``slow``: ``slow-receivers-200ms``, N (20,000) over 1,000 subscriptions of a receiver that
  answers every request 200 ms after reading it, by one ``dispatcher worker`` process (so
  that its memory is its own): the rate, the worker's peak RSS, and the most connections the
  receiver saw open at once.
- ``dead``: ``healthy-alone``, 10,000 deliveries over 100 subscriptions of a fast receiver,
  and ``healthy-with-5-dead``, the same with 5 more subscriptions of a receiver that reads
  and never answers, 500 pending deliveries each, loaded first (older: they waited while
  their receiver was dead); a ``Worker`` in this process until the healthy ones are all
  ``succeeded``, or for at most ten times as long as alone (and at least 60 s): the rate is
  then what was delivered by that time, the rest ``unfinished``. The dead ones' attempts
  hold their slots for the whole delivery timeout (15 s); the dead receiver is stopped once
  the time is taken, so that the worker's stop does not wait for them.
- ``ordered``: ``ordered-subscription``, N events (2,000) to one subscription with
  ``ordered: true`` and a fast receiver, accepted through the store's ingest (which numbers
  them) while it is disabled, then enabled; ``busy-subscription``'s ``Worker`` until all
  are ``succeeded``: one delivery at a time, each waiting for the record of the one before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dispatcher.config import Settings
from dispatcher.database import open_database
from dispatcher.store import Store

from .bulk import load_backlog, make_subscriptions
from .common import Result, count_rows, fresh_database
from .delivery import on_defaults, run_worker
from .receiver import Receiver
from .scenarios import CONCURRENCY, drain, off_loop


def _urls(port: int, prefix: str, count: int) -> list[str]:
    return [f"http://127.0.0.1:{port}/{prefix}/{i}" for i in range(count)]


def _creators(engine: str) -> int:
    """Subscriptions created at once (SQLite has one writer)."""
    return 4 if engine == "sqlite" else 16


# ---- busy ----------------------------------------------------------------------------------

async def busy_and_spread(engine: str, n: int = 20_000, spread: int = 1_000) -> list[Result]:
    """N deliveries for one subscription, then the same N over ``spread`` subscriptions."""
    results = []
    async with off_loop(Receiver()) as port:
        for name, count in ((f"busy-subscription ({engine})", 1),
                            (f"spread-subscriptions ({engine})", spread)):
            async with fresh_database(engine) as database_url:
                owner, subs = await make_subscriptions(
                    database_url, _urls(port, "s", count), ["bench.*"], _creators(engine))
                await load_backlog(database_url, owner, subs, n)
                seconds, _ = await run_worker(on_defaults(database_url), n)
                attempts = await count_rows(database_url, "attempt")
            if attempts != n:
                raise RuntimeError(f"{name}: {attempts} attempts recorded for {n} deliveries")
            results.append(Result(name, n, CONCURRENCY, seconds, {"subscriptions": count}))
    busy, spread_out = results
    busy.extra["rate_vs_spread"] = round(busy.per_second / spread_out.per_second, 3)
    return results


# ---- ordered -------------------------------------------------------------------------------

async def ordered_subscription(engine: str, n: int = 2_000) -> Result:
    """N events to one ordered subscription of a fast receiver, then delivered."""
    async with off_loop(Receiver()) as port, fresh_database(engine) as database_url:
        store = Store(open_database(Settings(database_url=database_url)))
        try:
            sub = await store.create_subscription("key_bench", {
                "url": f"http://127.0.0.1:{port}/ordered", "ordered": True, "enabled": False})
            for start in range(0, n, 100):  # a hundred at a time: group commits
                await asyncio.gather(*(store.accept_event("key_bench", "bench.ordered",
                                                          {"i": i}, None, 60)
                                       for i in range(start, min(n, start + 100))))
            await store.update_subscription(sub["id"], None, {"enabled": True})
        finally:
            await store.db.dispose()
        seconds, _ = await run_worker(on_defaults(database_url), n)
        attempts = await count_rows(database_url, "attempt")
    if attempts != n:
        raise RuntimeError(f"ordered: {attempts} attempts recorded for {n} deliveries")
    return Result(f"ordered-subscription ({engine})", n, CONCURRENCY, seconds,
                  {"subscriptions": 1, "ordered": True})


# ---- slow ----------------------------------------------------------------------------------

async def slow_receivers(engine: str, n: int = 20_000, subscriptions: int = 1_000,
                         delay_ms: int = 200) -> Result:
    """N deliveries over ``subscriptions`` subscriptions of a receiver answering after
    ``delay_ms``, by one ``dispatcher worker`` process."""
    receiver = Receiver(delay_ms=delay_ms)
    async with off_loop(receiver) as port, fresh_database(engine) as database_url:
        owner, subs = await make_subscriptions(
            database_url, _urls(port, "s", subscriptions), ["bench.*"], _creators(engine))
        loaded = await load_backlog(database_url, owner, subs, n)
        result = await drain(database_url, n)
        connections = await asyncio.to_thread(receiver.connections)
    result.name = f"slow-receivers-{delay_ms}ms ({engine})"
    result.extra |= {"subscriptions": subscriptions, "delay_ms": delay_ms,
                     "receiver_connections_peak": connections["peak"],
                     "load_seconds": round(loaded["load_seconds"], 2)}
    return result


# ---- dead ----------------------------------------------------------------------------------

async def dead_receivers(engine: str, n: int = 10_000, healthy: int = 100, dead: int = 5,
                         dead_each: int = 500) -> list[Result]:
    """N deliveries over ``healthy`` subscriptions alone, then with ``dead`` subscriptions of
    a receiver that never answers, ``dead_each`` pending deliveries each."""
    async with off_loop(Receiver()) as port:
        alone = await _healthy(f"healthy-alone ({engine})", engine, port, n, healthy)
        dead_receiver = Receiver(never=True)
        async with off_loop(dead_receiver) as dead_port:
            with_dead = await _healthy(f"healthy-with-{dead}-dead ({engine})", engine, port, n,
                                       healthy, (dead_receiver, dead_port, dead, dead_each),
                                       max(60.0, alone.seconds / 0.1))
    with_dead.extra["rate_vs_alone"] = round(with_dead.per_second / alone.per_second, 3)
    return [alone, with_dead]


async def _healthy(name: str, engine: str, port: int, n: int, healthy: int,
                   dead: tuple[Receiver, int, int, int] | None = None,
                   give_up_after: float | None = None) -> Result:
    """Seconds until the N healthy deliveries are ``succeeded``; with ``dead`` (its
    receiver, port, subscriptions, deliveries each), theirs are loaded first. With
    ``give_up_after``, the result is what was delivered by then (``unfinished``: how many
    were not)."""
    extra: dict[str, Any] = {"healthy_subscriptions": healthy}
    async with fresh_database(engine) as database_url:
        if dead is not None:
            receiver, dead_port, count, each = dead
            owner, subs = await make_subscriptions(
                database_url, _urls(dead_port, "d", count), ["bench.*"], _creators(engine))
            await load_backlog(database_url, owner, subs, count * each)
            extra |= {"dead_subscriptions": count, "dead_pending": count * each}
        owner, subs = await make_subscriptions(
            database_url, _urls(port, "h", healthy), ["bench.*"], _creators(engine))
        await load_backlog(database_url, owner, subs, n)

        async def end_dead() -> None:
            """The time is taken: how many attempts the dead receiver held at once, then
            it stops, and the attempts it held end at once."""
            if dead is not None:
                extra["dead_connections_peak"] = (
                    await asyncio.to_thread(dead[0].connections))["peak"]
                await asyncio.to_thread(dead[0].__exit__)

        seconds, done = await run_worker(on_defaults(database_url), n, end_dead,
                                         give_up_after)
    if done < n:
        extra |= {"unfinished": n - done, "gave_up_after_s": round(seconds, 1)}
    return Result(name, done, CONCURRENCY, seconds, extra)
