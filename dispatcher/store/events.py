"""Events: ingest (group commit, or one transaction with an idempotency key), the fan-out to
deliveries, reads, and event replay.

``fan_out`` is the one place new deliveries are made: both ingest paths and event replay
call it, on the subscriptions ``matching`` chose (or those a replay names).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import event_types, ids
from ..clock import utcnow
from ..database import Database
from ..models import api_key_table, delivery_table, event_table, subscription_table
from ..vocabulary import DeliveryStatus, Trigger
from .base import StoreBase
from .batching import DriverInsert, GroupCommit
from .rows import (
    EventRow,
    IdempotencyKeyReused,
    KeyDeleted,
    NotFound,
    Page,
    created_between,
    encode_payload,
    row_dict,
    same_request,
)

EVENT_COLUMNS = ("id", "type", "payload", "publisher", "idempotency_key", "created_at")
DELIVERY_COLUMNS = ("id", "event_id", "event_type", "subscription_id", "status", "attempts",
                    "retry_base", "next_trigger", "next_attempt_at", "created_at", "updated_at")


def live_subscriptions() -> sa.Select[Any]:
    """What fan-out needs of every subscription that is not deleted."""
    s = subscription_table
    return sa.select(s.c.id, s.c.event_types, s.c.enabled).where(s.c.deleted_at.is_(None))


def matching(subs: Sequence[Any], event_type: str) -> list[Any]:
    """The subscriptions of ``subs`` (``live_subscriptions`` rows) that take ``event_type``."""
    return [sub for sub in subs if event_types.matches_any(sub.event_types, event_type)]


def fan_out(event_id: str, event_type: str, subs: Sequence[Any], at: Any,
            trigger: Trigger) -> list[tuple[Any, ...]]:
    """One new delivery per subscription of ``subs`` (rows with ``id`` and ``enabled``), in
    the order of ``DELIVERY_COLUMNS``: pending and due at ``at``, or held for a disabled
    subscription. ``at`` is only stored as times, so it may be a time already bound for the
    driver (``DriverInsert.bind``)."""
    # Plain text, as the driver takes it: no adapter lookup per row.
    pending, held, why = DeliveryStatus.PENDING.value, DeliveryStatus.HELD.value, trigger.value
    return [(ids.new_id("dlv"), event_id, event_type, sub.id, pending if sub.enabled else held,
             0, 0, why, at if sub.enabled else None, at, at) for sub in subs]


@dataclass(frozen=True, slots=True)
class _Sub:
    id: str
    enabled: bool


def _delivery_row(event_id: str, event_type: str, sub_id: str, enabled: bool, now: datetime,
                  trigger: str) -> dict[str, Any]:
    """One new delivery as a row (for ``benchmarks/bulk.py``, which fills tables directly)."""
    values = fan_out(event_id, event_type, [_Sub(sub_id, enabled)], now, Trigger(trigger))[0]
    return dict(zip(DELIVERY_COLUMNS, values, strict=True))


async def _insert_deliveries(db: Database, conn: AsyncConnection,
                             values: list[tuple[Any, ...]]) -> None:
    """``fan_out``'s deliveries, inserted in an async transaction that then announces them."""
    if values:
        await conn.execute(sa.insert(delivery_table),
                           [dict(zip(DELIVERY_COLUMNS, v, strict=True)) for v in values])
        await db.announce(conn)


@dataclass(slots=True)
class _NewEvent:
    """An event on its way into a group commit (``Events.accept_event``)."""

    row: EventRow
    check_key: bool


class Events(StoreBase):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        # Events without an Idempotency-Key: concurrent requests commit together.
        self._ingest: GroupCommit[_NewEvent, int] = GroupCommit(self._insert_events)
        self._inserts: dict[str, tuple[DriverInsert, DriverInsert]] = {}  # by dialect

    async def accept_event(
        self, publisher: str, event_type: str, data: Any, idempotency_key: str | None,
        idempotency_ttl: float, *, check_key: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Store the event and one delivery per matching subscription, in one transaction.

        Returns the event (with ``deliveries``, the fan-out count) and whether it is new;
        an ``idempotency_key`` seen from this publisher within the TTL returns the first, or
        raises ``IdempotencyKeyReused`` when the first had another type or data.
        With ``check_key`` the API key ``publisher`` must still be live when the event is
        stored (checked in its transaction; just before it for an idempotency key), else
        ``KeyDeleted`` and nothing is stored: for callers that authenticated from memory.

        Events without an idempotency key commit in groups: concurrent requests share one
        transaction (``GroupCommit``), each still returning only once it has committed.
        """
        now = utcnow()
        event = EventRow(id=ids.new_id("evt"), type=event_type, publisher=publisher,
                         idempotency_key=idempotency_key, created_at=now,
                         payload=encode_payload(event_type, now, data))
        if idempotency_key is None:
            fanned_out = await self._ingest.submit(_NewEvent(event, check_key))
            return dict(event, deliveries=fanned_out), True
        if check_key and not await self._key_is_live(publisher):
            raise KeyDeleted(publisher)
        e = event_table
        asked = (event_type, data)
        earlier = await self._idempotent_event(
            publisher, idempotency_key, now, idempotency_ttl, asked)
        if earlier is not None:
            return earlier, False
        try:
            async with self.writer.begin() as conn:
                # An expired key gives way to the new event; a live one, committed since the
                # look-up above, stays and makes the insert fail (IntegrityError below).
                await conn.execute(
                    sa.update(e)
                    .where(e.c.publisher == publisher, e.c.idempotency_key == idempotency_key,
                           e.c.created_at <= now - timedelta(seconds=idempotency_ttl))
                    .values(idempotency_key=None)
                )
                await conn.execute(sa.insert(e), event)
                subs = (await conn.execute(live_subscriptions())).all()
                rows = fan_out(event["id"], event_type, matching(subs, event_type), now,
                               Trigger.SCHEDULED)
                await _insert_deliveries(self.db, conn, rows)
        except IntegrityError:
            # The same idempotency key, committed by a concurrent request first.
            earlier = await self._idempotent_event(
                publisher, idempotency_key, now, idempotency_ttl, asked)
            if earlier is None:
                raise
            return earlier, False
        if rows:
            self.wakeup.notify()
        return dict(event, deliveries=len(rows)), True

    async def _insert_events(self, items: list[_NewEvent]) -> list[int | Exception]:
        """One transaction for a group of new events (``GroupCommit``): the event rows and
        their deliveries; per event its fan-out count, or ``KeyDeleted``."""
        checked = {item.row["publisher"] for item in items if item.check_key}
        results, live = await self.db.run_write(
            functools.partial(self._write_events, items, checked))
        for gone in checked - live:
            self._forget_key(gone)
        if any(isinstance(count, int) and count for count in results):
            self.wakeup.notify()
        return results

    def _write_events(
        self, items: list[_NewEvent], checked: set[str], conn: sa.Connection,
    ) -> tuple[list[int | Exception], set[str]]:
        """``_insert_events`` on a synchronous connection (``Database.run_write``)."""
        k = api_key_table
        event_insert, delivery_insert = self._driver_inserts(conn.dialect)
        live: set[str] = set()
        if checked:
            live = set(conn.execute(
                sa.select(k.c.id).where(k.c.id.in_(checked), k.c.deleted_at.is_(None))
            ).scalars())
        subs = conn.execute(live_subscriptions()).all()
        results: list[int | Exception] = []
        events: list[tuple[Any, ...]] = []
        deliveries: list[tuple[Any, ...]] = []
        by_type: dict[str, list[Any]] = {}
        for item in items:
            event = item.row
            if item.check_key and event["publisher"] not in live:
                results.append(KeyDeleted(event["publisher"]))
                continue
            chosen = by_type.get(event["type"])
            if chosen is None:
                chosen = by_type[event["type"]] = matching(subs, event["type"])
            events.append(event_insert.params(
                {c: event_insert.bind(c, v) for c, v in event.items()}))
            # One bound time for all of the event's rows.
            at = delivery_insert.bind("created_at", event["created_at"])
            deliveries += fan_out(event["id"], event["type"], chosen, at, Trigger.SCHEDULED)
            results.append(len(chosen))
        if events:
            event_insert.execute(conn, events)
        if deliveries:
            delivery_insert.execute(conn, deliveries)
            self.db.announce_sync(conn)
        return results, live

    def _driver_inserts(self, dialect: sa.Dialect) -> tuple[DriverInsert, DriverInsert]:
        made = self._inserts.get(dialect.name)
        if made is None:
            made = self._inserts[dialect.name] = (
                DriverInsert(event_table, EVENT_COLUMNS, dialect),
                DriverInsert(delivery_table, DELIVERY_COLUMNS, dialect))
        return made

    async def _idempotent_event(
        self, publisher: str, key: str, now: datetime, ttl: float, asked: tuple[str, Any],
    ) -> dict[str, Any] | None:
        """The live event stored under ``key``, if any; ``IdempotencyKeyReused`` if it was
        asked for with another (type, data) than ``asked``."""
        e, d = event_table, delivery_table
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(e.c.id, e.c.type, e.c.created_at, e.c.payload).where(
                        e.c.publisher == publisher,
                        e.c.idempotency_key == key,
                        e.c.created_at > now - timedelta(seconds=ttl),
                    )
                )
            ).first()
            if row is None:
                return None
            # Compared with the stored body: no hash column, and rows from before work alike.
            if not same_request(row.payload, *asked):
                raise IdempotencyKeyReused(key)
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(d).where(d.c.event_id == row.id)
            )
        return {"id": row.id, "type": row.type, "created_at": row.created_at,
                "deliveries": count}

    async def list_events(
        self, publisher: str | None, event_type: str | None, after: datetime | None,
        before: datetime | None, cursor: str | None, limit: int, order: str,
    ) -> Page:
        e = event_table
        stmt = sa.select(e.c.id, e.c.type, e.c.created_at, e.c.payload)
        if publisher is not None:
            stmt = stmt.where(e.c.publisher == publisher)
        if event_type is not None:
            stmt = stmt.where(e.c.type == event_type)
        stmt = stmt.where(*created_between(e, "evt", after, before, since_inclusive=False))
        return await self._page(stmt, e.c.id, cursor, limit, order)

    async def get_event(self, event_id: str, publisher: str | None) -> dict[str, Any]:
        e = event_table
        stmt = sa.select(e.c.id, e.c.type, e.c.created_at, e.c.payload, e.c.publisher).where(
            e.c.id == event_id
        )
        if publisher is not None:
            stmt = stmt.where(e.c.publisher == publisher)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(event_id)
        return row_dict(row)

    async def replay_event(self, event_id: str, subscription_ids: Sequence[str] | None) -> int:
        """New deliveries of an event: to the given subscriptions, or to every one that
        matches it now; their attempts carry trigger ``replay``."""
        e, s = event_table, subscription_table
        now = utcnow()
        async with self.writer.begin() as conn:
            # Locked, so that a concurrent prune cannot remove it under the new deliveries.
            event = (await conn.execute(
                sa.select(e.c.id, e.c.type).where(e.c.id == event_id).with_for_update())).first()
            if event is None:
                raise NotFound(event_id)
            stmt = live_subscriptions()
            if subscription_ids is not None:
                stmt = stmt.where(s.c.id.in_(subscription_ids))
            subs = (await conn.execute(stmt)).all()
            if subscription_ids is not None:
                missing = set(subscription_ids) - {sub.id for sub in subs}
                if missing:
                    raise NotFound(sorted(missing)[0])
            else:
                subs = matching(subs, event.type)
            rows = fan_out(event.id, event.type, subs, now, Trigger.REPLAY)
            await _insert_deliveries(self.db, conn, rows)
        self.wakeup.notify()
        return len(rows)
