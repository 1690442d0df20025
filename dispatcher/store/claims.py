"""The queue's hot statements, each built once per shape with bound parameters: the claim,
the soonest due time, and what a claim reads beside it.

SQLAlchemy builds a new statement object's tree and hashes it for its cache on every
execution; a claim built afresh cost 2.8 ms of CPU on an empty PostgreSQL queue, and at a
steady trickle of events a worker claims after nearly every one. A statement object made
once keeps its hash, and only its parameters change.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import delivery_table, event_table, subscription_table
from ..vocabulary import DeliveryStatus

# A claim's share for retries when first attempts would fill it: one row in RETRY_EVERY.
RETRY_EVERY = 4

_d = delivery_table
_NOW = sa.bindparam("b_now", type_=_d.c.next_attempt_at.type)
_SKIP: sa.BindParameter[str] = sa.bindparam("b_skip", expanding=True)
_ANY: sa.BindParameter[str] = sa.bindparam("b_ids", expanding=True)


def unleased_pending(*, first: bool, skip: bool) -> list[sa.ColumnElement[bool]]:
    """Pending deliveries no live lease holds at ``b_now`` (and, with ``skip``, not of the
    subscriptions in ``b_skip``), in one lane: ``first`` attempts or retries. What the
    claim takes once due, and what an idle worker waits for; each lane reads its own
    partial index."""
    where = [
        # Literals, not parameters: the planner matches them to the indexes' WHERE clauses.
        _d.c.status == sa.literal_column(f"'{DeliveryStatus.PENDING.value}'"),
        _d.c.attempts == sa.literal_column("0") if first
        else _d.c.attempts > sa.literal_column("0"),
        _d.c.next_attempt_at.is_not(None),
        sa.or_(_d.c.lease_until.is_(None), _d.c.lease_until < _NOW),
    ]
    if skip:
        where.append(_d.c.subscription_id.not_in(_SKIP))
    return where


@functools.cache
def claim_statement(*, skip_locked: bool, skip: bool, retries: bool) -> sa.Update:
    """One statement: lease up to ``b_limit`` deliveries due by ``b_now`` to ``b_owner``
    until ``b_until``, and return what a job needs of them; with ``skip_locked`` (the
    dialect's ``Database.claims_skip_locked``), rows other claims hold are passed over.

    First attempts go ahead of retries, each lane in due order, except that retries keep
    one row in ``RETRY_EVERY`` of a claim first attempts would fill: a retry storm does not
    delay fresh deliveries, and fresh ones do not starve retries. With ``retries``, at most
    ``b_retries`` of them; without, first attempts only.
    """
    lanes = []
    for first in (True, False) if retries else (True,):
        lane = (
            sa.select(_d.c.id, _d.c.next_attempt_at)
            .where(*unleased_pending(first=first, skip=skip), _d.c.next_attempt_at <= _NOW)
            .order_by(_d.c.next_attempt_at)
            .limit(sa.bindparam("b_limit" if first else "b_retries", type_=sa.Integer)))
        due = (lane.with_for_update(skip_locked=True) if skip_locked else lane).subquery()
        place = sa.func.row_number().over(order_by=due.c.next_attempt_at)
        lanes.append(sa.select(
            due.c.id, (place if first else place * RETRY_EVERY).label("place"),
            sa.literal(0 if first else 1).label("lane")))
    both = sa.union_all(*lanes).subquery()
    chosen = (sa.select(both.c.id).order_by(both.c.place, both.c.lane)
              .limit(sa.bindparam("b_limit", type_=sa.Integer)))
    return (
        sa.update(_d)
        .where(_d.c.id.in_(chosen.scalar_subquery()))
        .values(lease_until=sa.bindparam("b_until", type_=_d.c.lease_until.type),
                lease_owner=sa.bindparam("b_owner"))
        .returning(_d.c.id, _d.c.event_id, _d.c.subscription_id, _d.c.attempts,
                   _d.c.retry_base, _d.c.next_trigger, _d.c.resume_status,
                   _d.c.resume_at, _d.c.next_attempt_at, _d.c.sequence, _d.c.event_type,
                   _d.c.tenant_id)
    )


def claim_shape(limit: int, most_retries: int | None) -> tuple[int, bool]:
    """How many of a claim of ``limit`` may be retries, and whether any may."""
    retries = limit if most_retries is None else min(limit, most_retries)
    return retries, retries > 0


def claim_params(now: datetime, lease_until: datetime, owner: str, limit: int,
                 retries: int, skip: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {"b_now": now, "b_until": lease_until, "b_owner": owner,
                              "b_limit": limit, "b_retries": retries}
    if skip:
        params["b_skip"] = list(skip)
    return params


@functools.cache
def _soonest(first: bool, skip: bool, due_by: bool) -> sa.Select[Any]:
    return (sa.select(_d.c.next_attempt_at)
            .where(*unleased_pending(first=first, skip=skip),
                   *([_d.c.next_attempt_at <= sa.bindparam(
                       "b_due_by", type_=_d.c.next_attempt_at.type)] if due_by else []))
            .order_by(_d.c.next_attempt_at)
            .limit(1))


async def soonest_due(conn: AsyncConnection, now: datetime, skip: Sequence[str] = (),
                      due_by: datetime | None = None, *, retries: bool = True
                      ) -> datetime | None:
    """The soonest ``next_attempt_at`` of unleased pending deliveries (due by ``due_by``
    when given; first attempts only unless ``retries``): LIMIT 1 on each lane's index, the
    sooner of the two."""
    params: dict[str, Any] = {"b_now": now}
    if skip:
        params["b_skip"] = list(skip)
    if due_by is not None:
        params["b_due_by"] = due_by
    found: list[datetime] = []
    for first in (True, False) if retries else (True,):
        at = await conn.scalar(_soonest(first, bool(skip), due_by is not None), params)
        if at is not None:
            found.append(at)
    return min(found, default=None)


# What a claim reads of its deliveries' events and subscriptions (``b_ids``).
PAYLOADS = sa.select(event_table.c.id, event_table.c.payload, event_table.c.trace_context
                     ).where(event_table.c.id.in_(_ANY))
_s = subscription_table
TARGETS = sa.select(_s.c.id, _s.c.url, _s.c.headers, _s.c.secrets, _s.c.rate_limit_per_second,
                    _s.c.failing_since, _s.c.deleted_at, _s.c.retry_schedule,
                    _s.c.timeout_seconds).where(_s.c.id.in_(_ANY))
