"""Fan-out: which subscriptions an event reaches, and its new deliveries.

``fan_out`` is the one place new deliveries are made: both ingest paths and event replay
(``store/events.py``) call it, on the subscriptions ``matching`` chose (their types, then
their filters) or those a replay names, among the event's audience: its tenant's
subscriptions, those of no tenant, or every one for a broadcast (``audience_query`` reads
only those, so one tenant's event never reads another's rows).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import event_types, filters, ids
from ..database import Database
from ..models import delivery_table, subscription_table
from ..vocabulary import DeliveryStatus, Trigger
from . import ordering
from .rows import EventRow
from .tenants import ALL_TENANTS

DELIVERY_COLUMNS = ("id", "event_id", "event_type", "subscription_id", "tenant_id", "status",
                    "attempts", "retry_base", "next_trigger", "next_attempt_at", "sequence",
                    "created_at", "updated_at")
SUB_AT, SEQUENCE_AT, DUE_AT, CREATED_AT, STATUS_AT = (DELIVERY_COLUMNS.index(c) for c in (
    "subscription_id", "sequence", "next_attempt_at", "created_at", "status"))
# What an event of no tenant is keyed by in fan-out's dicts (broadcasts by this marker).
EVERYONE = object()


@functools.cache
def live_subscriptions() -> sa.Select[Any]:
    """What fan-out needs of every subscription that is not deleted (built once, as the
    statements of the ingest path are: store/claims.py says why)."""
    s = subscription_table
    # The filter as its stored text: compiled once per process (filters.compiled_text).
    return sa.select(s.c.id, s.c.event_types, s.c.enabled, s.c.tenant_id, s.c.ordered,
                     sa.cast(s.c.filter, sa.Text).label("filter")).where(
        s.c.deleted_at.is_(None))


@functools.cache
def _audience(named: bool, untenanted: bool) -> sa.Select[Any]:
    s = subscription_table
    wanted = [s.c.tenant_id.in_(sa.bindparam("b_tenants", expanding=True))] if named else []
    if untenanted:
        wanted.append(s.c.tenant_id.is_(None))
    return live_subscriptions().where(sa.or_(*wanted))


def audience_query(events: Iterable[EventRow | Any]) -> tuple[sa.Select[Any], dict[str, Any]]:
    """One read of the live subscriptions that any of ``events`` (rows with ``tenant_id`` and
    ``broadcast``) may fan out to: the tenants named (an index range each), those of no
    tenant if an event has none, and all of them only for a broadcast. The statement and
    its parameters."""
    tenants: set[str | None] = set()
    for event in events:
        if event["broadcast"]:
            return live_subscriptions(), {}
        tenants.add(event["tenant_id"])
    named = sorted(t for t in tenants if t is not None)
    return _audience(bool(named), None in tenants), {"b_tenants": named} if named else {}


def tenants_to_lock(events: Iterable[EventRow | Any]) -> list[str]:
    """The tenant locks a fan-out of ``events`` holds (``Database.tenant_locks``), so that a
    concurrent tenant deletion waits for its deliveries and then cancels them: each tenant
    an event is for, and ``ALL_TENANTS`` for a broadcast."""
    named: set[str] = set()
    for event in events:
        if event["broadcast"]:
            named.add(ALL_TENANTS)
        elif event["tenant_id"] is not None:
            named.add(event["tenant_id"])
    return sorted(named)


def by_audience(subs: Sequence[Any]) -> dict[object, list[Any]]:
    """``audience_query``'s rows by the audience they belong to: a tenant id, None (no
    tenant), and ``EVERYONE`` (all of them, what a broadcast reaches)."""
    grouped: dict[object, list[Any]] = {EVERYONE: list(subs)}
    for sub in subs:
        grouped.setdefault(sub.tenant_id, []).append(sub)
    return grouped


def audience_of(event: EventRow | Any) -> object:
    """The key of ``by_audience`` that ``event`` fans out to."""
    return EVERYONE if event["broadcast"] else event["tenant_id"]


@dataclass(frozen=True, slots=True)
class Chosen:
    """The subscriptions of an audience that take an event type: those that take every
    event of it, and those whose filter decides event by event."""

    always: list[Any]
    filtered: list[tuple[Any, filters.Predicate]]

    def for_event(self, body: Callable[[], Any]) -> list[Any]:
        """Those that take this event; ``body()`` gives what a subscriber receives, asked
        for only when a filter needs it."""
        if not self.filtered:
            return self.always
        seen = body()
        return self.always + [sub for sub, wants in self.filtered if wants(seen)]


def matching(subs: Sequence[Any], event_type: str) -> Chosen:
    """The subscriptions of ``subs`` (``live_subscriptions`` rows) that take ``event_type``."""
    taking = [sub for sub in subs if event_types.matches_any(sub.event_types, event_type)]
    return Chosen([sub for sub in taking if sub.filter is None],
                  [(sub, filters.compiled_text(sub.filter)) for sub in taking
                   if sub.filter is not None])


def fan_out(event_id: str, event_type: str, subs: Sequence[Any], at: Any,
            trigger: Trigger) -> list[tuple[Any, ...]]:
    """One new delivery per subscription of ``subs`` (rows with ``id``, ``tenant_id``,
    ``enabled`` and ``ordered``), in the order of ``DELIVERY_COLUMNS``: pending and due at
    ``at``, or held for a disabled subscription; each carries its subscription's tenant.
    An ordered subscription's waits, undue and unnumbered: ``sequenced`` numbers them and
    ``ordering.settle`` makes its head due. ``at`` is only stored as times, so it may be a
    time already bound for the driver (``DriverInsert.bind``)."""
    # Plain text, as the driver takes it: no adapter lookup per row.
    pending, held, why = DeliveryStatus.PENDING.value, DeliveryStatus.HELD.value, trigger.value
    return [(ids.new_id("dlv"), event_id, event_type, sub.id, sub.tenant_id,
             pending if sub.enabled else held, 0, 0, why,
             at if sub.enabled and not sub.ordered else None, None, at, at)
            for sub in subs]


def ordered_in(values: Sequence[tuple[Any, ...]], subs: Iterable[Any]) -> dict[str, int]:
    """How many of the new deliveries ``values`` each ordered subscription of ``subs`` has."""
    ordered = {sub.id for sub in subs if sub.ordered}
    counts: dict[str, int] = {}
    for row in values:
        if row[SUB_AT] in ordered:
            counts[row[SUB_AT]] = counts.get(row[SUB_AT], 0) + 1
    return counts


def sequenced(conn: sa.Connection, values: list[tuple[Any, ...]], subs: Iterable[Any]
              ) -> tuple[list[tuple[Any, ...]], list[str]]:
    """``values`` with the deliveries of ordered subscriptions numbered (their rows locked
    till the transaction ends), and those subscriptions, to ``settle`` once inserted."""
    counts = ordered_in(values, subs)
    if not counts:
        return values, []
    ordered = ordering.ordered_among(conn, counts)
    firsts = ordering.take_sequences(conn, {sub: counts[sub] for sub in ordered})
    # One made unordered since the audience was read: its deliveries are due as any.
    plain = set(counts) - set(ordered)
    pending = DeliveryStatus.PENDING.value
    values = [(*row[:DUE_AT], row[CREATED_AT], *row[DUE_AT + 1:])
              if row[SUB_AT] in plain and row[DUE_AT] is None and row[STATUS_AT] == pending
              else row for row in values]
    return ordering.numbered(values, firsts, SUB_AT, SEQUENCE_AT), ordered


@dataclass(frozen=True, slots=True)
class _Sub:
    id: str
    enabled: bool
    tenant_id: str | None = None
    ordered: bool = False


def _delivery_row(event_id: str, event_type: str, sub_id: str, enabled: bool, now: datetime,
                  trigger: str, tenant_id: str | None = None) -> dict[str, Any]:
    """One new delivery as a row (for ``benchmarks/bulk.py``, which fills tables directly)."""
    values = fan_out(event_id, event_type, [_Sub(sub_id, enabled, tenant_id)], now,
                     Trigger(trigger))[0]
    return dict(zip(DELIVERY_COLUMNS, values, strict=True))


async def _insert_deliveries(db: Database, conn: AsyncConnection,
                             values: list[tuple[Any, ...]], subs: Sequence[Any],
                             now: datetime) -> None:
    """``fan_out``'s deliveries to ``subs``, numbered where ordered, inserted in an async
    transaction that then announces them."""
    if values:
        values, ordered = await conn.run_sync(sequenced, values, subs)
        await conn.execute(sa.insert(delivery_table),
                           [dict(zip(DELIVERY_COLUMNS, v, strict=True)) for v in values])
        await conn.run_sync(ordering.settle, ordered, now)
        await db.announce(conn)
