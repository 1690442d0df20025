"""Deliveries as operators and subscribers see them: lists, retry now, bulk replay,
recovery counts, and pruning what is finished."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .. import ids
from ..clock import utcnow
from ..models import (
    attempt_table,
    delivery_table,
    event_table,
    portal_link_table,
    subscription_table,
)
from ..vocabulary import DeliveryStatus, Trigger
from . import ordering
from .base import StoreBase
from .rows import (
    Conflict,
    DeliveryFilter,
    NotFound,
    Page,
    Scope,
    created_between,
    row_dict,
    slack,
)


def _prunable(older_than: datetime, include_failed: bool) -> list[sa.ColumnElement[bool]]:
    """The deliveries prune deletes: finished and created before ``older_than``."""
    d = delivery_table
    statuses = [DeliveryStatus.SUCCEEDED, DeliveryStatus.CANCELLED] + (
        [DeliveryStatus.FAILED] if include_failed else [])
    # The id bound lets the primary key index narrow the scan.
    return [d.c.id < ids.time_bound("dlv", slack(older_than, +1)), d.c.status.in_(statuses),
            d.c.created_at < older_than]


def _old_events(older_than: datetime) -> list[sa.ColumnElement[bool]]:
    """The events prune deletes once no delivery is left to them."""
    e = event_table
    return [e.c.id < ids.time_bound("evt", slack(older_than, +1)), e.c.created_at < older_than]



def _ended_links(older_than: datetime) -> sa.ColumnElement[bool]:
    """The portal links prune deletes: expired or revoked before ``older_than``."""
    p = portal_link_table
    return sa.or_(p.c.expires_at < older_than, p.c.revoked_at < older_than)


class Deliveries(StoreBase):
    def _delivery_query(self, scope: Scope | None) -> sa.Select[Any]:
        d, s = delivery_table, subscription_table
        stmt = sa.select(
            d.c.id, d.c.event_id, d.c.event_type, d.c.subscription_id, d.c.tenant_id,
            d.c.status, d.c.attempts, d.c.next_attempt_at, d.c.last_status_code,
            d.c.last_error, d.c.created_at, d.c.updated_at, d.c.lease_until,
        )
        if scope is not None:
            stmt = stmt.where(scope.deliveries(d, s))
        return stmt

    async def list_deliveries(
        self, scope: Scope | None, *, status: str | None = None,
        subscription_id: str | None = None, event_type: str | None = None,
        event_id: str | None = None, tenant_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
        cursor: str | None = None, limit: int = 50, order: str = "desc",
    ) -> Page:
        d = delivery_table
        stmt = self._delivery_query(scope)
        if status is not None:
            stmt = stmt.where(d.c.status == status)
        if subscription_id is not None:
            stmt = stmt.where(d.c.subscription_id == subscription_id)
        if event_type is not None:
            stmt = stmt.where(d.c.event_type == event_type)
        if event_id is not None:
            stmt = stmt.where(d.c.event_id == event_id)
        if tenant_id is not None:
            stmt = stmt.where(d.c.tenant_id == tenant_id)
        stmt = stmt.where(*created_between(d, "dlv", since, until))
        return await self._page(stmt, d.c.id, cursor, limit, order)

    async def get_delivery(self, delivery_id: str, scope: Scope | None) -> dict[str, Any]:
        stmt = self._delivery_query(scope).where(delivery_table.c.id == delivery_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(delivery_id)
        return row_dict(row)

    async def list_attempts(
        self, delivery_id: str, scope: Scope | None, cursor: str | None, limit: int, order: str
    ) -> Page:
        await self.get_delivery(delivery_id, scope)
        a = attempt_table
        stmt = sa.select(a).where(a.c.delivery_id == delivery_id)
        return await self._page(stmt, a.c.id, cursor, limit, order)

    async def retry_now(self, delivery_id: str, scope: Scope | None) -> dict[str, Any]:
        """Schedule one manual attempt now, whatever the delivery's status.

        It is outside the schedule: unless it succeeds, the delivery goes back to its status
        (``resume_status``) and, if pending, to its next attempt time (``resume_at``), and
        the attempt uses up no retry (``record_attempts``). Asked again before the attempt
        starts, nothing changes: one attempt is queued, from the state before the first ask.
        """
        d, s = delivery_table, subscription_table
        now = utcnow()
        async with self.writer.begin() as conn:
            stmt = self._delivery_query(scope).where(d.c.id == delivery_id)
            row = (await conn.execute(stmt)).first()
            if row is None:
                raise NotFound(delivery_id)
            # As replay does, leave deliveries of deleted subscriptions alone, finished
            # ones too: their URL is no longer anyone's to send to.
            # One read for what the API row does not show: the subscription's deletion and
            # whether a manual attempt is queued already.
            deleted, next_trigger = (await conn.execute(
                sa.select(s.c.deleted_at, d.c.next_trigger)
                .where(s.c.id == d.c.subscription_id, d.c.id == delivery_id))).one()
            if row.status == DeliveryStatus.CANCELLED or deleted is not None:
                raise Conflict("subscription_deleted", "the delivery's subscription was deleted")
            pending = row.status == DeliveryStatus.PENDING
            if pending and row.lease_until is not None and row.lease_until > now:
                raise Conflict("attempt_in_progress", "an attempt of this delivery is under way")
            queued = pending and next_trigger == Trigger.MANUAL
            if not queued:
                await conn.execute(
                    sa.update(d)
                    .where(d.c.id == delivery_id)
                    .values(
                        status=DeliveryStatus.PENDING,
                        next_trigger=Trigger.MANUAL,
                        resume_status=row.status,
                        resume_at=row.next_attempt_at if pending else None,
                        next_attempt_at=now,
                        updated_at=now,
                    )
                )
                # An ordered subscription's takes its place: after the one in flight.
                await conn.run_sync(ordering.settle, [row.subscription_id], now)
                await self.db.announce(conn)
            row = (await conn.execute(stmt)).one()
        self.wakeup.notify()
        return row_dict(row)

    def _replay_query(self, f: DeliveryFilter) -> sa.Select[Any]:
        d, s = delivery_table, subscription_table
        stmt = (
            sa.select(d.c.id, s.c.enabled, d.c.subscription_id, s.c.ordered)
            .join(s, s.c.id == d.c.subscription_id)
            .where(d.c.status == f.status, s.c.deleted_at.is_(None))
        )
        if f.subscription_id is not None:
            stmt = stmt.where(d.c.subscription_id == f.subscription_id)
        if f.event_type is not None:
            stmt = stmt.where(d.c.event_type == f.event_type)
        if f.tenant_id is not None:
            stmt = stmt.where(d.c.tenant_id == f.tenant_id)
        return stmt.where(*created_between(d, "dlv", f.since, f.until))

    async def count_replayable(self, f: DeliveryFilter) -> int:
        stmt = sa.select(sa.func.count()).select_from(self._replay_query(f).subquery())
        async with self.engine.connect() as conn:
            return await conn.scalar(stmt) or 0

    async def replay(
        self, f: DeliveryFilter, batch: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send matching deliveries again, each with a fresh retry budget (trigger ``replay``).

        Works through the matches in id order, one short transaction per ``batch``, so any
        number of matches needs neither memory nor a long lock. Deliveries of disabled
        subscriptions become ``held``; those of deleted ones are left alone.
        """
        if f.status not in (DeliveryStatus.FAILED, DeliveryStatus.SUCCEEDED):
            raise ValueError("only failed or succeeded deliveries can be replayed")
        d = delivery_table
        done, after = 0, ""
        while True:
            changed = 0
            async with self.writer.begin() as conn:
                found = (await conn.execute(
                    self._replay_query(f).where(d.c.id > after).order_by(d.c.id).limit(batch)
                )).all()
                if not found:
                    break
                now = utcnow()
                for enabled in (True, False):
                    chosen = [r.id for r in found if bool(r.enabled) is enabled]
                    if chosen:
                        changed += (await conn.execute(
                            sa.update(d)
                            .where(d.c.id.in_(chosen), d.c.status == f.status)
                            .values(status=DeliveryStatus.PENDING if enabled
                                    else DeliveryStatus.HELD,
                                    next_attempt_at=now if enabled else None,
                                    retry_base=d.c.attempts, next_trigger=Trigger.REPLAY,
                                    resume_status=None, resume_at=None, lease_until=None,
                                    lease_owner=None,
                                    updated_at=now))).rowcount
                # An ordered subscription's replayed deliveries go in order, one at a time.
                ordered = {r.subscription_id for r in found if r.ordered and r.enabled}
                if ordered:
                    await conn.run_sync(ordering.settle, ordered, now)
                await self.db.announce(conn)
            self.wakeup.notify()
            # Counted as changed: a row another request moved on meanwhile is not replayed.
            done += changed
            after = found[-1].id
            if progress is not None:
                progress(len(found))
        return done

    async def prune(
        self, older_than: datetime, include_failed: bool = False, batch: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, int]:
        """Delete finished deliveries created before ``older_than`` with their attempts, then
        events with no delivery left, batch by batch (``failed`` ones only when asked); and
        portal links that expired or were revoked before then."""
        a, d, e = attempt_table, delivery_table, event_table
        counts = {"deliveries": 0, "attempts": 0, "events": 0}
        while True:
            async with self.writer.begin() as conn:
                chosen = (await conn.execute(
                    sa.select(d.c.id).where(*_prunable(older_than, include_failed))
                    .order_by(d.c.id).limit(batch))).scalars().all()
                if not chosen:
                    break
                gone = await conn.execute(sa.delete(a).where(a.c.delivery_id.in_(chosen)))
                await conn.execute(sa.delete(d).where(d.c.id.in_(chosen)))
            counts["attempts"] += gone.rowcount
            counts["deliveries"] += len(chosen)
            if progress is not None:
                progress(len(chosen))
        after = ""
        while True:
            async with self.writer.begin() as conn:
                old = (await conn.execute(
                    sa.select(e.c.id).where(*_old_events(older_than), e.c.id > after)
                    .order_by(e.c.id).limit(batch))).scalars().all()
                if not old:
                    break
                kept = set((await conn.execute(
                    sa.select(d.c.event_id).where(d.c.event_id.in_(old)).distinct()
                )).scalars())
                orphans = [i for i in old if i not in kept]
                if orphans:
                    # Checked again in the statement: a replay may have added deliveries.
                    no_delivery = ~sa.exists().where(d.c.event_id == e.c.id)
                    await conn.execute(sa.delete(e).where(e.c.id.in_(orphans), no_delivery))
            counts["events"] += len(orphans)
            after = old[-1]
        async with self.writer.begin() as conn:
            gone = await conn.execute(sa.delete(portal_link_table).where(
                _ended_links(older_than)))
        counts["portal_links"] = int(gone.rowcount or 0)
        return counts

    async def count_prunable(self, older_than: datetime, include_failed: bool = False
                             ) -> dict[str, int]:
        """What ``prune`` would delete now, counted and left in place (for a dry run)."""
        a, d, e = attempt_table, delivery_table, event_table
        prunable = sa.and_(*_prunable(older_than, include_failed))
        kept = sa.exists().where(d.c.event_id == e.c.id, ~prunable)
        async with self.engine.connect() as conn:
            deliveries = await conn.scalar(
                sa.select(sa.func.count()).select_from(d).where(prunable))
            attempts = await conn.scalar(
                sa.select(sa.func.count()).select_from(a.join(d, a.c.delivery_id == d.c.id))
                .where(prunable))
            events = await conn.scalar(
                sa.select(sa.func.count()).select_from(e).where(*_old_events(older_than), ~kept))
            links = await conn.scalar(sa.select(sa.func.count()).select_from(portal_link_table)
                                      .where(_ended_links(older_than)))
        return {"deliveries": deliveries or 0, "attempts": attempts or 0, "events": events or 0,
                "portal_links": links or 0}
