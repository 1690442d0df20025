"""The queue the worker works: claim due deliveries (leased), record finished attempts,
keep, give back or defer leases, share rate-limit tokens, and wait for work.

``WorkQueue`` names all the worker uses of the store (as procrastinate's worker knows only
its job manager); ``Queue`` is the store's side of it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..clock import utcnow
from ..health import Attempted, after_attempts
from ..models import attempt_table, delivery_table, subscription_table
from ..operational import Finished, after_recording
from ..vocabulary import DeliveryStatus, Trigger
from . import operational, ordering
from .base import StoreBase
from .claims import PAYLOADS, TARGETS, claim_params, claim_shape, claim_statement, soonest_due
from .health import settle_streaks
from .rows import AttemptRecord, Job, valid_keys


class WorkQueue(Protocol):
    """What the worker needs of the store, and nothing more."""

    async def claim_due(self, owner: str, limit: int, lease_seconds: float,
                        skip: Sequence[str] = (), *, most_retries: int | None = None
                        ) -> list[Job]: ...

    async def record_attempts(self, owner: str, records: Sequence[AttemptRecord],
                              disable_after: float | None = None) -> None: ...

    async def take_tokens(self, sub_id: str, want: int, limit: int, second: int) -> int: ...

    async def defer(self, owner: str, ids: Sequence[str], until: datetime) -> None: ...

    async def extend_leases(self, owner: str, ids: Sequence[str],
                            lease_seconds: float) -> int: ...

    async def release_leases(self, owner: str, ids: Sequence[str]) -> None: ...

    async def next_due_at(self, skip: Sequence[str] = (), *, retries: bool = True
                          ) -> datetime | None: ...

    async def prune(self, older_than: datetime, include_failed: bool = False,
                    batch: int = 1000, progress: Callable[[int], None] | None = None,
                    ) -> dict[str, int]: ...

    async def wait_for_work(self, seconds: float) -> None: ...

    def wake(self) -> None: ...


@functools.cache
def _moved_on() -> sa.Update:
    """A recorded attempt's delivery moved to its new state (executemany: ``_move`` params,
    with ``b_owner`` and ``b_now``); built once (store/claims.py says why).

    Only the lease holder moves the delivery on; an attempt made after the lease ran out is
    still recorded, and the new holder decides. A delivery cancelled meanwhile (its
    subscription deleted) stays cancelled.
    """
    d = delivery_table
    cancelled = d.c.status == DeliveryStatus.CANCELLED
    return (
        sa.update(d)
        .where(d.c.id == sa.bindparam("b_id"), d.c.lease_owner == sa.bindparam("b_owner"))
        .values(
            status=sa.case((cancelled, d.c.status), else_=sa.bindparam("b_status")),
            attempts=d.c.attempts + 1,
            # A manual attempt is outside the schedule: it uses up no retry.
            retry_base=d.c.retry_base + sa.bindparam("b_outside"),
            next_attempt_at=sa.case(
                (cancelled, None),
                else_=sa.bindparam("b_next", type_=d.c.next_attempt_at.type)),
            lease_until=None,
            lease_owner=None,
            last_status_code=sa.bindparam("b_code"),
            last_error=sa.bindparam("b_error"),
            next_trigger=sa.bindparam("b_trigger"),
            resume_status=None,
            resume_at=None,
            updated_at=sa.bindparam("b_now", type_=d.c.updated_at.type),
        )
    )


def _move(r: AttemptRecord) -> dict[str, Any]:
    job = r.job
    return {
        "b_id": job.delivery_id,
        # A replayed delivery's retries are part of the replay.
        "b_trigger": Trigger.REPLAY if job.trigger == Trigger.REPLAY
        and r.status == DeliveryStatus.PENDING else Trigger.SCHEDULED,
        "b_status": r.status,
        "b_outside": 1 if job.trigger == Trigger.MANUAL else 0,
        "b_next": r.next_attempt_at,
        "b_code": r.status_code,
        "b_error": r.error,
    }


def _finished(r: AttemptRecord) -> Finished:
    job = r.job
    return Finished(job.delivery_id, job.event_id, job.event_type, job.subscription_id,
                    job.tenant_id, job.number, r.status_code, r.error, job.failing_since)


async def _failed_now(conn: AsyncConnection, records: Sequence[AttemptRecord],
                      now: datetime) -> list[str]:
    """The deliveries of ``records`` that this recording moved to failed for good: not one
    already failed (a manual retry of it failed again), nor one whose lease had run out (its
    new holder decides), nor a batch written again after a lost commit answer."""
    ending = [r.job.delivery_id for r in records if r.status == DeliveryStatus.FAILED
              and r.job.resume_status != DeliveryStatus.FAILED]
    if not ending:
        return []
    d = delivery_table
    return list((await conn.execute(sa.select(d.c.id).where(
        d.c.id.in_(ending), d.c.status == DeliveryStatus.FAILED,
        d.c.updated_at == now))).scalars())


def _attempt(r: AttemptRecord) -> dict[str, Any]:
    return {"id": r.id, "delivery_id": r.job.delivery_id, "number": r.job.number,
            "trigger": r.job.trigger, "started_at": r.started_at, "duration_ms": r.duration_ms,
            "status_code": r.status_code, "response_body": r.response_body, "error": r.error,
            "outcome": r.outcome}


class Queue(StoreBase):
    async def claim_due(
        self, owner: str, limit: int, lease_seconds: float, skip: Sequence[str] = (), *,
        most_retries: int | None = None,
    ) -> list[Job]:
        """Lease up to ``limit`` due deliveries to ``owner`` and return them as jobs, first
        attempts first, each lane oldest due first.

        ``skip``: subscriptions this worker may not start more attempts for just now;
        ``most_retries``: how many of them may be retries (0: first attempts only; None: up
        to ``limit``).
        """
        d = delivery_table
        now = utcnow()
        until = now + timedelta(seconds=lease_seconds)
        retries, any_retries = claim_shape(limit, most_retries)
        async with self.writer.begin() as conn:
            claimed = (await conn.execute(
                claim_statement(skip_locked=self.db.claims_skip_locked, skip=bool(skip),
                                retries=any_retries),
                claim_params(now, until, owner, limit, retries, skip))).all()
            if not claimed:
                return []
            # Each event and subscription once, however many of the deliveries share it
            # (a fan-out is one event to many; a busy subscription gets many events).
            events = {e.id: e for e in await conn.execute(
                PAYLOADS, {"b_ids": list({r.event_id for r in claimed})})}
            subs = {r.id: r for r in await conn.execute(
                TARGETS, {"b_ids": list({r.subscription_id for r in claimed})})}
            # Nothing goes to a deleted subscription: a delivery of one found pending (left
            # so by an older version) is cancelled here, as the deletion meant, and not sent.
            deleted = {sub_id for sub_id, sub in subs.items() if sub.deleted_at is not None}
            if deleted:
                await conn.execute(
                    sa.update(d)
                    .where(d.c.id.in_([r.id for r in claimed if r.subscription_id in deleted]))
                    .values(status=DeliveryStatus.CANCELLED, next_attempt_at=None, lease_until=None,
                            lease_owner=None, updated_at=now))
                subs = {sub_id: sub for sub_id, sub in subs.items() if sub_id not in deleted}
        keys = {sub_id: valid_keys(self._opened_secrets(sub.secrets), now)
                for sub_id, sub in subs.items()}
        return [
            Job(
                delivery_id=r.id,
                event_id=r.event_id,
                subscription_id=r.subscription_id,
                number=r.attempts + 1,
                round_number=r.attempts - r.retry_base + 1,
                trigger=r.next_trigger,
                resume_status=r.resume_status,
                url=sub.url,
                headers=sub.headers,
                keys=keys[r.subscription_id],
                payload=events[r.event_id].payload,
                rate_limit=sub.rate_limit_per_second,
                failing_since=sub.failing_since,
                resume_at=r.resume_at,
                due_at=r.next_attempt_at,
                retry_schedule=None if sub.retry_schedule is None
                else tuple(sub.retry_schedule),
                timeout=sub.timeout_seconds,
                sequence=r.sequence,
                event_type=r.event_type,
                tenant_id=r.tenant_id,
                trace_context=events[r.event_id].trace_context,
            )
            # First attempts first, as the claim chose them; each lane in due order.
            for r in sorted(claimed, key=lambda r: (r.attempts > 0, r.next_attempt_at))
            if (sub := subs.get(r.subscription_id)) is not None and r.event_id in events
        ]

    async def record_attempts(
        self, owner: str, records: Sequence[AttemptRecord], disable_after: float | None = None
    ) -> None:
        """Store attempts and the deliveries' new states, and release their leases, in one
        transaction; with them the subscriptions' failure streaks as
        ``dispatcher.health.after_attempts`` decides (a 410 disables at once, no success for
        ``disable_after`` seconds disables). Pending deliveries of disabled subscriptions
        are held."""
        if not records:
            return
        now = utcnow()
        streaks = after_attempts(
            [Attempted(r.job.subscription_id, r.outcome, r.gone, r.job.failing_since)
             for r in records], now, disable_after)
        retried = {r.job.subscription_id for r in records
                   if r.status == DeliveryStatus.PENDING}
        async with self.writer.begin() as conn:
            # Idempotent: a batch is written again when its commit's answer was lost.
            await conn.execute(self.db.insert_once(attempt_table),
                               [_attempt(r) for r in records])
            # In id order, the order extend_leases locks them in: a renewal and a recording
            # never wait on each other in a cycle (PostgreSQL: a deadlock, a 1 s stall).
            await conn.execute(_moved_on(), sorted(
                (_move(r) | {"b_owner": owner, "b_now": now} for r in records),
                key=lambda move: move["b_id"]))
            settled = await settle_streaks(conn, streaks, retried, now)
            # An ordered subscription's head that finished (or was held): the next one is due.
            ordered = {r.job.subscription_id for r in records if r.job.sequence is not None}
            promoted = await conn.run_sync(ordering.settle, ordered, now) if ordered else 0
            if promoted:
                await self.db.announce(conn)
            told = await operational.publish(self.db, conn, after_recording(
                [_finished(r) for r in records], await _failed_now(conn, records, now),
                settled.disabled, settled.ended, now), now)
        if promoted or told:
            self.wake()  # this process's workers too: the next head, or news, is due now

    async def take_tokens(self, sub_id: str, want: int, limit: int, second: int) -> int:
        """Start up to ``want`` attempts in the one-second window ``second``, shared by every
        worker; returns how many may start (the rest wait for the next window)."""
        s = subscription_table
        async with self.writer.begin() as conn:
            row = (await conn.execute(
                sa.select(s.c.rate_window, s.c.rate_count).where(s.c.id == sub_id)
                .with_for_update()
            )).first()
            if row is None:
                return want
            used = row.rate_count if row.rate_window == second else 0
            granted = max(0, min(want, limit - used))
            if granted:
                await conn.execute(
                    sa.update(s).where(s.c.id == sub_id)
                    .values(rate_window=second, rate_count=used + granted))
        return granted

    async def defer(self, owner: str, ids: Sequence[str], until: datetime) -> None:
        """Put claimed deliveries back, due at ``until``: no attempt, no retry used."""
        await self._own_leases(owner, ids, next_attempt_at=until, lease_until=None,
                               lease_owner=None)

    async def extend_leases(self, owner: str, ids: Sequence[str], lease_seconds: float) -> int:
        """Keep this worker's leases on ``ids``: it is alive, its attempts merely slow."""
        until = utcnow() + timedelta(seconds=lease_seconds)
        return await self._own_leases(owner, ids, lease_until=until)

    async def release_leases(self, owner: str, ids: Sequence[str]) -> None:
        """Give back leases on ``ids``: they are due again at once."""
        await self._own_leases(owner, ids, lease_until=None, lease_owner=None)

    async def _own_leases(self, owner: str, ids: Sequence[str], **values: Any) -> int:
        """Change deliveries in ``ids`` that ``owner`` still holds (a primary-key lookup)."""
        if not ids:
            return 0
        d = delivery_table
        async with self.writer.begin() as conn:
            result = await conn.execute(
                sa.update(d).where(d.c.id.in_(ids), d.c.lease_owner == owner).values(**values))
        return result.rowcount

    async def next_due_at(self, skip: Sequence[str] = (), *, retries: bool = True
                          ) -> datetime | None:
        """When the next unleased pending delivery comes due (LIMIT 1 on each lane's index),
        leaving out the subscriptions in ``skip`` (and retries, unless ``retries``)."""
        async with self.engine.connect() as conn:
            return await soonest_due(conn, utcnow(), skip, retries=retries)

    async def wait_for_work(self, seconds: float) -> None:
        """Until deliveries may be due (a wake-up, here or from another process), at most
        ``seconds``."""
        await self.wakeup.wait(seconds)

    def wake(self) -> None:
        """Tell this process's idle workers to look for due deliveries now."""
        self.wakeup.notify()
