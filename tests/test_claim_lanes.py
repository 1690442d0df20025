"""The claim's two lanes: first attempts ahead of retries, a share kept for retries, each
lane read from its own partial index (both engines)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from dispatcher.clock import utcnow
from dispatcher.database import open_database
from dispatcher.models import delivery_table
from dispatcher.store import Store
from dispatcher.store.claims import RETRY_EVERY, claim_params, claim_statement, soonest_due

from .databases import run_async


async def _queue(settings, first: int, retries: int) -> tuple[Store, set[str], list[str]]:
    """``first`` fresh deliveries, then ``retries`` made to look failed once and due earlier
    than any fresh one (oldest first): their ids."""
    store = Store(open_database(settings))
    await store.create_subscription("key_test", {"url": "http://127.0.0.1:9/hook"})
    for i in range(first + retries):
        await store.accept_event("key_test", "thing.happened", {"i": i}, None, 60)
    d = delivery_table
    async with store.engine.begin() as conn:
        ids = list((await conn.execute(sa.select(d.c.id).order_by(d.c.id))).scalars())
        retry_ids = ids[:retries]
        for n, delivery_id in enumerate(retry_ids):
            await conn.execute(sa.update(d).where(d.c.id == delivery_id).values(
                attempts=1, next_attempt_at=utcnow() - timedelta(minutes=10 - n / 100)))
    return store, set(ids[retries:]), retry_ids


@pytest.mark.parametrize(("first", "retries", "limit", "most", "fresh_taken", "count"), [
    (10, 10, 10, None, 8, 10),  # both lanes full: one row in RETRY_EVERY stays with retries
    (2, 10, 10, None, 2, 10),  # few first attempts: retries fill the rest
    (10, 0, 10, None, 10, 10),
    (0, 10, 10, None, 0, 10),
    (2, 10, 10, 3, 2, 5),  # at most 3 retries
    (0, 10, 10, 3, 0, 3),
    (10, 10, 10, 0, 10, 10),  # first attempts only
    (2, 10, 10, 0, 2, 2),
])
def test_first_attempts_go_ahead_of_retries(settings, first, retries, limit, most,
                                            fresh_taken, count):
    assert RETRY_EVERY == 4  # the table above is worked out for 4

    async def run() -> None:
        store, fresh, retry_ids = await _queue(settings, first, retries)
        try:
            jobs = await store.claim_due("wrk_test", limit, 30, most_retries=most)
            taken = [j.delivery_id for j in jobs]
            assert len(taken) == count
            assert len([t for t in taken if t in fresh]) == fresh_taken
            assert set(taken[:fresh_taken]) <= fresh  # and the worker starts them first
            # Retries in due order: the oldest ones.
            assert sorted(t for t in taken if t not in fresh) == sorted(
                retry_ids[:len(taken) - fresh_taken])
        finally:
            await store.db.dispose()

    run_async(run())


def test_each_lane_reads_its_own_index(settings):
    async def run() -> list[str]:
        store, _, _ = await _queue(settings, 3, 3)
        now = utcnow()
        params = claim_params(now, now + timedelta(seconds=30), "wrk_test", 50, 50, ["sub_x"])
        # The built-once statement with this claim's values in place, to EXPLAIN it.
        claim = visitors.replacement_traverse(
            claim_statement(skip_locked=store.db.claims_skip_locked, skip=True, retries=True),
            {}, lambda el: sa.bindparam(el.key, params[el.key], type_=el.type,
                                        expanding=el.expanding)
            if isinstance(el, BindParameter) and el.key in params else None)
        explain = ("EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite"
                   else "EXPLAIN ")
        plans = []
        try:
            async with store.engine.connect() as conn:
                compiled = claim.compile(store.engine,
                                         compile_kwargs={"literal_binds": True})
                plans.append(" ".join(str(r) for r in (
                    await conn.exec_driver_sql(explain + str(compiled))).all()))
                assert await soonest_due(conn, now) is not None
            return plans
        finally:
            await store.db.dispose()

    (plan,) = run_async(run())
    assert "ix_delivery_due_first" in plan and "ix_delivery_due_retry" in plan, plan


def test_the_soonest_due_is_the_sooner_lane(settings):
    async def run() -> None:
        store, _, _ = await _queue(settings, 2, 2)
        try:
            async with store.engine.connect() as conn:
                soonest = await soonest_due(conn, utcnow())
                oldest = await conn.scalar(sa.select(sa.func.min(
                    delivery_table.c.next_attempt_at)))
            assert soonest == oldest
            assert (await store.queue_stats()).oldest_due_seconds >= 9 * 60
        finally:
            await store.db.dispose()

    run_async(run())
