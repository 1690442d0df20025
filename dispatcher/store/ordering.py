"""Ordered subscriptions: one delivery at a time, in the order their events were accepted.

Each delivery of an ordered subscription gets its ``sequence`` at fan-out (1, 2, 3 … from
the subscription's ``next_sequence``, under its row lock). Of its pending deliveries only
the head has a due time; the others wait with ``next_attempt_at`` null, which keeps them
out of both claim lanes. So the ordinary claim, on any worker and either engine, can take
at most the head; a retry keeps it the head (its due time only moves later); a worker
killed holding it loses its lease, and the head is claimed again. Whatever changes the
head (a fan-out, a finished attempt, a replay, enabling) then ``settle``s the subscription,
under its row lock: ``next_head`` decides which one delivery is due.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..models import delivery_table, subscription_table
from ..vocabulary import DeliveryStatus

_d, _s = delivery_table, subscription_table
_SUB: sa.BindParameter[str] = sa.bindparam("b_sub")
_ORDERED_PENDING = (_d.c.subscription_id == _SUB,
                    _d.c.status == sa.literal_column(f"'{DeliveryStatus.PENDING.value}'"),
                    _d.c.sequence.is_not(None))
# The due ones (the head; more only after a replay or an enabling), and the first waiting.
_ACTIVE = sa.select(_d.c.id, _d.c.sequence, _d.c.lease_until).where(
    *_ORDERED_PENDING, _d.c.next_attempt_at.is_not(None))
_FIRST_WAITING = (sa.select(_d.c.id, _d.c.sequence)
                  .where(*_ORDERED_PENDING, _d.c.next_attempt_at.is_(None))
                  .order_by(_d.c.sequence).limit(1))
_ORDERED_SUBS = sa.select(_s.c.id).where(
    _s.c.id.in_(sa.bindparam("b_ids", expanding=True)), _s.c.ordered.is_(True)
).order_by(_s.c.id).with_for_update()
_TAKE = (sa.update(_s).where(_s.c.id == _SUB)
         .values(next_sequence=_s.c.next_sequence + sa.bindparam("b_count", type_=sa.BigInteger))
         .returning(_s.c.next_sequence))
_DUE_NOW = sa.update(_d).where(_d.c.id == sa.bindparam("b_id")).values(
    next_attempt_at=sa.bindparam("b_now", type_=_d.c.next_attempt_at.type))
_WAIT = sa.update(_d).where(_d.c.id.in_(sa.bindparam("b_ids", expanding=True))).values(
    next_attempt_at=None)


@dataclass(frozen=True, slots=True)
class Due:
    """A pending delivery of an ordered subscription that has a due time."""

    id: str
    sequence: int
    in_flight: bool  # leased by a live worker


def next_head(active: Sequence[Due], first_waiting: tuple[str, int] | None
              ) -> tuple[str | None, list[str]]:
    """Which delivery to make due (None: none) and which due ones to send back to waiting,
    so that exactly one is due (or none is left): the one in flight if there is one, else
    the lowest sequence of the due ones and the first waiting one."""
    flying = [a for a in active if a.in_flight]
    if flying:
        keep = min(flying, key=lambda a: a.sequence).id
        return None, [a.id for a in active if a.id != keep]
    candidates = [(a.sequence, a.id, True) for a in active]
    if first_waiting is not None:
        candidates.append((first_waiting[1], first_waiting[0], False))
    if not candidates:
        return None, []
    _, keep, already_due = min(candidates)
    return (None if already_due else keep), [a.id for a in active if a.id != keep]


def ordered_among(conn: sa.Connection, sub_ids: Iterable[str]) -> list[str]:
    """Those of ``sub_ids`` that are ordered, their rows locked (in id order: no two
    transactions wait for each other in a circle) until the transaction ends."""
    wanted = sorted(set(sub_ids))
    return list(conn.execute(_ORDERED_SUBS, {"b_ids": wanted}).scalars()) if wanted else []


def take_sequences(conn: sa.Connection, counts: dict[str, int]) -> dict[str, int]:
    """For each ordered subscription, the first of ``counts[sub]`` new sequence numbers.
    Call after ``ordered_among`` locked them."""
    return {sub: conn.execute(_TAKE, {"b_sub": sub, "b_count": n}).scalar_one() - n + 1
            for sub, n in sorted(counts.items())}


def settle(conn: sa.Connection, sub_ids: Iterable[str], now: datetime) -> int:
    """Make exactly one pending delivery of each ordered subscription in ``sub_ids`` due
    (``next_head``), its row locked first; on an async connection, through ``run_sync``.
    How many were made due now (the caller announces them)."""
    promoted = 0
    for sub in ordered_among(conn, sub_ids):
        active = [Due(r.id, r.sequence, r.lease_until is not None and r.lease_until > now)
                  for r in conn.execute(_ACTIVE, {"b_sub": sub})]
        waiting = conn.execute(_FIRST_WAITING, {"b_sub": sub}).first()
        promote, demote = next_head(active, None if waiting is None
                                    else (waiting.id, waiting.sequence))
        if demote:
            conn.execute(_WAIT, {"b_ids": demote})
        if promote is not None:
            conn.execute(_DUE_NOW, {"b_id": promote, "b_now": now})
            promoted += 1
    return promoted


def numbered(values: list[tuple[Any, ...]], firsts: dict[str, int], sub_at: int,
             seq_at: int) -> list[tuple[Any, ...]]:
    """The new delivery rows ``values`` (in event order), those of the subscriptions in
    ``firsts`` with their sequence numbers, counting up from each one's first."""
    following = dict(firsts)
    out = []
    for row in values:
        sub = row[sub_at]
        if sub in following:
            row = (*row[:seq_at], following[sub], *row[seq_at + 1:])
            following[sub] += 1
        out.append(row)
    return out
