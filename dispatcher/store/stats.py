"""What the queue and the subscriptions look like now: counts for /metrics and the
dashboard, attempts per minute, and the subscriptions that are unwell."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .. import ids
from ..clock import utcnow
from ..models import attempt_table, delivery_table, subscription_table
from ..vocabulary import DeliveryStatus
from .base import StoreBase
from .claims import soonest_due
from .rows import QueueStats, row_dict, slack


class Stats(StoreBase):
    async def queue_stats(self) -> QueueStats:
        """What is waiting and what is unwell, for /metrics and the dashboard: each count
        an index range (status first), so cheap however many deliveries have finished."""
        d, s = delivery_table, subscription_table
        now = utcnow()
        by_status = (sa.select(d.c.status, sa.func.count())
                     .where(d.c.status.in_(
                         (DeliveryStatus.PENDING, DeliveryStatus.HELD, DeliveryStatus.FAILED)))
                     .group_by(d.c.status))
        live = s.c.deleted_at.is_(None)
        unwell = sa.select(
            sa.func.count().filter(s.c.enabled.is_(False)),
            sa.func.count().filter(s.c.enabled.is_(True), s.c.failing_since.is_not(None)),
        ).where(live, sa.or_(s.c.enabled.is_(False), s.c.failing_since.is_not(None)))
        async with self.engine.connect() as conn:
            counts: dict[str, int] = {
                status: n for status, n in (await conn.execute(by_status)).all()}
            due = await soonest_due(conn, now, due_by=now)
            disabled, failing = (await conn.execute(unwell)).one()
        return QueueStats(
            pending=counts.get(DeliveryStatus.PENDING, 0),
            held=counts.get(DeliveryStatus.HELD, 0),
            failed=counts.get(DeliveryStatus.FAILED, 0),
            oldest_due_seconds=max(0.0, (now - due).total_seconds()) if due else 0.0,
            disabled_subscriptions=disabled or 0, failing_subscriptions=failing or 0,
        )

    async def attempts_per_minute(self, since: datetime) -> list[tuple[datetime, str, int]]:
        """(minute, outcome, attempts) since ``since``: a range of the time-ordered attempt
        ids, grouped by the minute each attempt started."""
        a = attempt_table
        if self.engine.dialect.name == "sqlite":
            minute: sa.ColumnElement[str] = sa.func.substr(a.c.started_at, 1, 16)
        else:
            minute = sa.func.to_char(sa.func.timezone("UTC", a.c.started_at),
                                     "YYYY-MM-DD HH24:MI")
        stmt = (sa.select(minute.label("minute"), a.c.outcome, sa.func.count())
                .where(a.c.id >= ids.time_bound("att", slack(since, -1)),
                       a.c.started_at >= since)
                .group_by(minute, a.c.outcome))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [(datetime.fromisoformat(m.replace(" ", "T") + ":00+00:00"), outcome, n)
                for m, outcome, n in rows]

    async def unwell_subscriptions(self, limit: int = 100,
                                   also: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Subscriptions that are disabled, or failing with no success since, worst first;
        and those of ``also`` (say, with failures lately) that are not deleted."""
        s = subscription_table
        unwell = sa.or_(s.c.enabled.is_(False), s.c.failing_since.is_not(None))
        stmt = (sa.select(s.c.id, s.c.description, s.c.tenant_id, s.c.url, s.c.enabled,
                          s.c.disabled_reason, s.c.failing_since, s.c.updated_at)
                .where(s.c.deleted_at.is_(None), sa.or_(unwell, s.c.id.in_(list(also)))
                       if also else unwell)
                .order_by(s.c.enabled, s.c.failing_since, s.c.id).limit(limit + len(also)))
        async with self.engine.connect() as conn:
            return [row_dict(r) for r in await conn.execute(stmt)]

    async def attempt_outcomes(
        self, since: datetime, sub_ids: Sequence[str] | None = None
    ) -> dict[str, dict[str, int]]:
        """{subscription id: {outcome: attempts}} of attempts started since ``since``: one
        grouped query over a range of the time-ordered attempt ids."""
        a, d = attempt_table, delivery_table
        stmt = (sa.select(d.c.subscription_id, a.c.outcome, sa.func.count())
                .select_from(a.join(d, d.c.id == a.c.delivery_id))
                .where(a.c.id >= ids.time_bound("att", slack(since, -1)),
                       a.c.started_at >= since)
                .group_by(d.c.subscription_id, a.c.outcome))
        if sub_ids is not None:
            if not sub_ids:
                return {}
            stmt = stmt.where(d.c.subscription_id.in_(list(sub_ids)))
        found: dict[str, dict[str, int]] = {}
        async with self.engine.connect() as conn:
            for sub_id, outcome, n in await conn.execute(stmt):
                found.setdefault(sub_id, {})[outcome] = n
        return found

    async def subscription_names(self, sub_ids: Sequence[str]) -> dict[str, str]:
        """{id: description} of these subscriptions (deleted ones too): what the dashboard
        calls them; an empty description is left out."""
        if not sub_ids:
            return {}
        s = subscription_table
        stmt = sa.select(s.c.id, s.c.description).where(
            s.c.id.in_(sorted(set(sub_ids))), s.c.description != "")
        async with self.engine.connect() as conn:
            return {r.id: r.description for r in await conn.execute(stmt)}

    async def last_successes(self, sub_ids: Sequence[str]) -> dict[str, datetime]:
        """When each subscription's newest succeeded delivery last changed (its success)."""
        if not sub_ids:
            return {}
        d = delivery_table
        newest = (sa.select(sa.func.max(d.c.id))
                  .where(d.c.subscription_id.in_(sub_ids), d.c.status == DeliveryStatus.SUCCEEDED)
                  .group_by(d.c.subscription_id))
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(d.c.subscription_id, d.c.updated_at).where(d.c.id.in_(newest)))
            return {r.subscription_id: r.updated_at for r in rows}
