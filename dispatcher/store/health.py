"""Subscription health in the database: recording's streak changes (decided by
``dispatcher.health.after_attempts``) written, and deliveries of disabled subscriptions
held."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..health import StreakChanges
from ..models import delivery_table, subscription_table
from ..vocabulary import DeliveryStatus, DisabledReason


async def hold_pending(conn: AsyncConnection, sub_ids: Sequence[str], now: datetime) -> None:
    """Deliveries of disabled subscriptions wait as ``held`` (not in flight ones: their
    attempt's record holds them); those of deleted ones (disabled too) are ``cancelled``, as
    the deletion made the others: one made by a fan-out racing the deletion ends here."""
    d, s = delivery_table, subscription_table
    waiting = [d.c.subscription_id.in_(sub_ids), d.c.status == DeliveryStatus.PENDING,
               sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now)]
    deleted = sa.select(s.c.id).where(s.c.id.in_(sub_ids), s.c.deleted_at.is_not(None))
    for status, where in ((DeliveryStatus.CANCELLED, d.c.subscription_id.in_(deleted)),
                          (DeliveryStatus.HELD, sa.true())):
        await conn.execute(
            sa.update(d).where(*waiting, where)
            .values(status=status, next_attempt_at=None, lease_until=None, lease_owner=None,
                    updated_at=now))


class Settled(NamedTuple):
    """What a recording changed of its subscriptions' health, as operational events tell
    it: those it disabled, with why, and those whose streak it ended."""

    disabled: dict[str, DisabledReason]
    ended: list[str]


async def settle_streaks(conn: AsyncConnection, changes: StreakChanges,
                         retried: Iterable[str], now: datetime) -> Settled:
    """Write ``changes`` in the recording's transaction; then hold the pending deliveries of
    subscriptions disabled now, and of those of ``retried`` (deliveries going back to
    pending) disabled meanwhile by an operator or another worker."""
    s = subscription_table
    ended: list[str] = []
    if changes.recovered:
        ended = list((await conn.execute(
            sa.update(s).where(s.c.id.in_(changes.recovered), s.c.failing_since.is_not(None))
            .values(failing_since=None).returning(s.c.id))).scalars())
    if changes.started:
        await conn.execute(
            sa.update(s).where(s.c.id.in_(changes.started), s.c.failing_since.is_(None))
            .values(failing_since=now))
    disabled: dict[str, DisabledReason] = {}
    if changes.gone:
        found = await conn.execute(
            sa.update(s)
            .where(s.c.id.in_(changes.gone), s.c.enabled.is_(True))
            .values(enabled=False, disabled_reason=DisabledReason.GONE, updated_at=now)
            .returning(s.c.id)
        )
        disabled |= dict.fromkeys(found.scalars(), DisabledReason.GONE)
    if changes.long_failing and changes.stale is not None:
        found = await conn.execute(
            sa.update(s)
            .where(s.c.id.in_(changes.long_failing), s.c.enabled.is_(True),
                   s.c.failing_since < changes.stale)
            .values(enabled=False, disabled_reason=DisabledReason.FAILING, updated_at=now)
            .returning(s.c.id)
        )
        disabled |= dict.fromkeys(found.scalars(), DisabledReason.FAILING)
    held = set(disabled)
    retried = set(retried)
    if retried:
        off = await conn.execute(
            sa.select(s.c.id).where(s.c.id.in_(retried), s.c.enabled.is_(False)))
        held |= set(off.scalars())
    if held:
        await hold_pending(conn, sorted(held), now)
    return Settled(disabled, ended)
