"""Events: ingest (group commit, or one transaction with an idempotency key), reads, and
event replay; the deliveries they make come from ``store/fan_out.py``."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import ids, tracing
from ..clock import utcnow
from ..database import Database
from ..models import api_key_table, delivery_table, event_table, subscription_table
from ..vocabulary import Trigger
from . import ordering
from .base import StoreBase
from .batching import DriverInsert, GroupCommit
from .fan_out import (
    DELIVERY_COLUMNS,
    EVERYONE,
    Chosen,
    _insert_deliveries,
    audience_of,
    audience_query,
    by_audience,
    fan_out,
    live_subscriptions,
    matching,
    sequenced,
    tenants_to_lock,
)
from .rows import (
    EventRow,
    IdempotencyKeyReused,
    Invalid,
    KeyDeleted,
    NotFound,
    Page,
    created_between,
    encode_payload,
    event_body,
    row_dict,
    same_request,
)

EVENT_COLUMNS = ("id", "type", "payload", "publisher", "idempotency_key", "tenant_id",
                 "broadcast", "trace_context", "created_at")

_e = event_table
# An event as lists and reads show it.
EVENT_SHOWN = (_e.c.id, _e.c.type, _e.c.created_at, _e.c.payload, _e.c.tenant_id, _e.c.broadcast)


def _stored_keys(conn: sa.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The events stored under these (publisher, idempotency key) pairs, expired or not
    (one at most each: the key is unique), by pair."""
    if not keys:
        return {}
    e = event_table
    columns = (e.c.id, e.c.type, e.c.created_at, e.c.payload, e.c.tenant_id, e.c.broadcast,
               e.c.publisher, e.c.idempotency_key)
    # One point look-up of the unique index per key, in one statement. Not a row-value IN
    # (SQLite scans the table for it), nor ``publisher = AND key IN``: PostgreSQL may then
    # walk the publisher's whole range of ix_event_publisher_id (seen on fresh statistics).
    lookups = [sa.select(*columns).where(e.c.publisher == publisher,
                                         e.c.idempotency_key == key)
               for publisher, key in sorted(set(keys))]
    rows = conn.execute(lookups[0] if len(lookups) == 1 else sa.union_all(*lookups)).all()
    return {(r.publisher, r.idempotency_key): r for r in rows}


def _earlier(row: Any, counts: dict[str, int]) -> Earlier:
    """The answer for a repeat of ``row``'s key: that event, with its deliveries counted."""
    return {"id": row.id, "type": row.type, "created_at": row.created_at,
            "tenant_id": row.tenant_id, "broadcast": bool(row.broadcast),
            "deliveries": counts.get(row.id, 0)}


@dataclass(slots=True)
class _NewEvent:
    """An event on its way into a group commit (``Events.accept_event``): with an
    idempotency key, also what was asked (to compare with a first event) and the key's TTL."""

    row: EventRow
    check_key: bool
    data: Any = None
    ttl: float = 0.0

    def key(self) -> tuple[str, str] | None:
        key = self.row["idempotency_key"]
        return None if key is None else (self.row["publisher"], key)

    def same_as(self, payload: bytes, tenant_id: str | None, broadcast: bool) -> bool:
        """Whether this asks for what an event stored so was asked for."""
        return (same_request(payload, self.row["type"], self.data)
                and (tenant_id, bool(broadcast)) == (self.row["tenant_id"],
                                                     self.row["broadcast"]))


# What a group commit answers for one event: its fan-out count when it is new, the first
# event when its idempotency key was seen (``Earlier``), or why it was refused.
Earlier = dict[str, Any]


# Which of the API keys ``b_ids`` are live (built once).
_LIVE_KEYS = sa.select(api_key_table.c.id).where(
    api_key_table.c.id.in_(sa.bindparam("b_ids", expanding=True)),
    api_key_table.c.deleted_at.is_(None))


class Events(StoreBase):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        # Events without an Idempotency-Key: concurrent requests commit together.
        self._ingest: GroupCommit[_NewEvent, int | Earlier] = GroupCommit(self._insert_events)
        self._inserts: dict[str, tuple[DriverInsert, DriverInsert]] = {}  # by dialect

    async def accept_event(
        self, publisher: str, event_type: str, data: Any, idempotency_key: str | None,
        idempotency_ttl: float, *, check_key: bool = False, tenant_id: str | None = None,
        broadcast: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Store the event and one delivery per matching subscription, in one transaction.

        The subscriptions are those of ``tenant_id``, or with none those of no tenant, or
        with ``broadcast`` every one (the caller never gives both).

        Returns the event (with ``deliveries``, the fan-out count) and whether it is new;
        an ``idempotency_key`` seen from this publisher within the TTL returns the first, or
        raises ``IdempotencyKeyReused`` when the first had another type, data or audience.
        With ``check_key`` the API key ``publisher`` must still be live when the event is
        stored (checked in its transaction), else
        ``KeyDeleted`` and nothing is stored: for callers that authenticated from memory.

        Events commit in groups: concurrent requests share one transaction (``GroupCommit``),
        each still returning only once it has committed. An idempotency key is looked up and
        claimed inside the group's transaction, so repeats in one group make one event.
        """
        now = utcnow()
        event = EventRow(id=ids.new_id("evt"), type=event_type, publisher=publisher,
                         idempotency_key=idempotency_key, tenant_id=tenant_id,
                         broadcast=broadcast, created_at=now,
                         payload=encode_payload(event_type, now, data),
                         trace_context=tracing.traceparent())
        result = await self._ingest.submit(_NewEvent(event, check_key, data, idempotency_ttl))
        if isinstance(result, dict):
            return result, False
        return dict(event, deliveries=result), True

    async def _lock_tenants(self, conn: AsyncConnection,
                            events: Iterable[EventRow | Any]) -> None:
        named = tenants_to_lock(events)
        if named and (locks := self.db.tenant_locks(named)) is not None:
            await conn.execute(locks)

    async def _insert_events(self, items: list[_NewEvent]) -> list[int | Earlier | Exception]:
        """One transaction for a group of new events (``GroupCommit``): the event rows and
        their deliveries; per event its fan-out count, the first event of its idempotency
        key, or ``KeyDeleted`` / ``IdempotencyKeyReused``."""
        checked = {item.row["publisher"] for item in items if item.check_key}
        keyed = any(item.row["idempotency_key"] is not None for item in items)
        for tries_left in (2, 1, 0):
            try:
                results, live = await self.db.run_write(
                    functools.partial(self._write_events, items, checked))
                break
            except IntegrityError:
                # A key claimed by another process's group meanwhile (PostgreSQL): the group
                # again finds it stored, and answers with that event.
                if not keyed or not tries_left:
                    raise
        for gone in checked - live:
            self._forget_key(gone)
        if any(isinstance(count, int) and count for count in results):
            self.wakeup.notify()
        return results

    def _write_events(
        self, items: list[_NewEvent], checked: set[str], conn: sa.Connection,
    ) -> tuple[list[int | Earlier | Exception], set[str]]:
        """``_insert_events`` on a synchronous connection (``Database.run_write``)."""
        event_insert, delivery_insert = self._driver_inserts(conn.dialect)
        live: set[str] = set()
        if checked:
            live = set(conn.execute(_LIVE_KEYS, {"b_ids": list(checked)}).scalars())
        named = tenants_to_lock(i.row for i in items)
        if named and (locks := self.db.tenant_locks(named)) is not None:
            conn.execute(locks)
        stored = _stored_keys(conn, [pair for i in items if (pair := i.key()) is not None])
        counts = {event_id: int(n) for event_id, n in conn.execute(
            sa.select(delivery_table.c.event_id, sa.func.count())
            .where(delivery_table.c.event_id.in_([r.id for r in stored.values()]))
            .group_by(delivery_table.c.event_id))} if stored else {}
        audiences = by_audience(conn.execute(*audience_query(i.row for i in items)).all())
        results: list[int | Earlier | Exception] = []
        events: list[tuple[Any, ...]] = []
        deliveries: list[tuple[Any, ...]] = []
        chosen_for: dict[tuple[object, str], Chosen] = {}
        claimed: dict[tuple[str, str], int] = {}  # a key, and the item of this group with it
        repeats: dict[int, int] = {}  # an item, and the earlier item of its key in the group
        expired: list[str] = []
        for index, item in enumerate(items):
            event = item.row
            if item.check_key and event["publisher"] not in live:
                results.append(KeyDeleted(event["publisher"]))
                continue
            if (key := item.key()) is not None:
                first = stored.get(key)
                if first is not None and first.created_at > (
                        event["created_at"] - timedelta(seconds=item.ttl)):
                    results.append(_earlier(first, counts) if item.same_as(
                        first.payload, first.tenant_id, first.broadcast)
                        else IdempotencyKeyReused(key[1]))
                    continue
                if first is not None:  # expired: the key gives way to this event
                    expired.append(first.id)
                    del stored[key]
                if key in claimed:
                    leader = items[claimed[key]].row
                    if item.same_as(leader["payload"], leader["tenant_id"],
                                    leader["broadcast"]):
                        repeats[index] = claimed[key]
                        results.append(0)  # filled in below, once the first is counted
                    else:
                        results.append(IdempotencyKeyReused(key[1]))
                    continue
                claimed[key] = index
            audience = audience_of(event)
            of_type = chosen_for.get((audience, event["type"]))
            if of_type is None:
                of_type = chosen_for[audience, event["type"]] = matching(
                    audiences.get(audience, ()), event["type"])
            chosen = of_type.for_event(functools.partial(
                event_body, event["type"], event["created_at"], item.data))
            events.append(event_insert.params(
                {c: event_insert.bind(c, v) for c, v in event.items()}))
            # One bound time for all of the event's rows.
            at = delivery_insert.bind("created_at", event["created_at"])
            deliveries += fan_out(event["id"], event["type"], chosen, at, Trigger.SCHEDULED)
            results.append(len(chosen))
        for index, first_index in repeats.items():
            results[index] = dict(items[first_index].row, deliveries=results[first_index])
        if expired:
            conn.execute(sa.update(event_table).where(event_table.c.id.in_(expired))
                         .values(idempotency_key=None))
        if events:
            event_insert.execute(conn, events)
        if deliveries:
            deliveries, ordered = sequenced(conn, deliveries, audiences[EVERYONE])
            delivery_insert.execute(conn, deliveries)
            ordering.settle(conn, ordered, utcnow())
            self.db.announce_sync(conn)
        return results, live

    def _driver_inserts(self, dialect: sa.Dialect) -> tuple[DriverInsert, DriverInsert]:
        made = self._inserts.get(dialect.name)
        if made is None:
            made = self._inserts[dialect.name] = (
                DriverInsert(event_table, EVENT_COLUMNS, dialect),
                DriverInsert(delivery_table, DELIVERY_COLUMNS, dialect))
        return made

    async def list_events(
        self, publisher: str | None, event_type: str | None, after: datetime | None,
        before: datetime | None, cursor: str | None, limit: int, order: str,
        *, tenant_id: str | None = None,
    ) -> Page:
        e = event_table
        stmt = sa.select(*EVENT_SHOWN)
        if publisher is not None:
            stmt = stmt.where(e.c.publisher == publisher)
        if tenant_id is not None:
            stmt = stmt.where(e.c.tenant_id == tenant_id)
        if event_type is not None:
            stmt = stmt.where(e.c.type == event_type)
        stmt = stmt.where(*created_between(e, "evt", after, before, since_inclusive=False))
        return await self._page(stmt, e.c.id, cursor, limit, order)

    async def get_event(self, event_id: str, publisher: str | None) -> dict[str, Any]:
        e = event_table
        stmt = sa.select(*EVENT_SHOWN, e.c.publisher).where(e.c.id == event_id)
        if publisher is not None:
            stmt = stmt.where(e.c.publisher == publisher)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(event_id)
        return row_dict(row)

    async def replay_event(self, event_id: str, subscription_ids: Sequence[str] | None) -> int:
        """New deliveries of an event: to the given subscriptions (whatever their filters
        say: they were named), or to every one of the event's audience whose types and
        filter take it now; their attempts carry trigger ``replay``.
        A named subscription outside the audience (another tenant's) is refused: an event
        published for one tenant never reaches another's endpoints."""
        e, s = event_table, subscription_table
        now = utcnow()
        async with self.writer.begin() as conn:
            # Locked, so that a concurrent prune cannot remove it under the new deliveries.
            event = (await conn.execute(
                sa.select(e.c.id, e.c.type, e.c.tenant_id, e.c.broadcast, e.c.payload)
                .where(e.c.id == event_id).with_for_update())).first()
            if event is None:
                raise NotFound(event_id)
            await self._lock_tenants(conn, [event._mapping])
            if subscription_ids is not None:
                stmt = live_subscriptions().where(s.c.id.in_(subscription_ids))
                subs = (await conn.execute(stmt)).all()
                missing = set(subscription_ids) - {sub.id for sub in subs}
                if missing:
                    raise NotFound(sorted(missing)[0])
                outside = sorted(sub.id for sub in subs
                                 if not event.broadcast and sub.tenant_id != event.tenant_id)
                if outside:
                    raise Invalid("tenant_mismatch", f"{outside[0]} does not belong to the "
                                  "event's tenant; an event goes only to its own tenant's "
                                  "subscriptions")
            else:
                subs = (await conn.execute(*audience_query([event._mapping]))).all()
                subs = matching(subs, event.type).for_event(
                    functools.partial(json.loads, event.payload))
            rows = fan_out(event.id, event.type, subs, now, Trigger.REPLAY)
            await _insert_deliveries(self.db, conn, rows, subs, now)
        self.wakeup.notify()
        return len(rows)
