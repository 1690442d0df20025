"""Reads about tenants for pages: what each tenant of a page has (subscriptions, how many
are unwell, deliveries waiting or failed), what the tenants shown are called, and the event
types a tenant's portal offers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..models import delivery_table, subscription_table, tenant_table
from ..vocabulary import DeliveryStatus
from .base import StoreBase


@dataclass(frozen=True, slots=True)
class TenantCounts:
    subscriptions: int = 0  # live (not deleted)
    failing: int = 0  # enabled, in a failure streak
    disabled: int = 0
    pending: int = 0
    failed: int = 0


class TenantStats(StoreBase):
    async def tenant_counts(self, tenant_ids: Sequence[str]) -> dict[str, TenantCounts]:
        """{tenant id: counts} for these tenants (those with nothing are left out): two
        grouped queries, each over the tenants' ranges of a ``(tenant_id, id)`` index."""
        if not tenant_ids:
            return {}
        s, d = subscription_table, delivery_table
        chosen = sorted(set(tenant_ids))
        subs = (sa.select(
                    s.c.tenant_id, sa.func.count(),
                    sa.func.count().filter(s.c.enabled.is_(True), s.c.failing_since.is_not(None)),
                    sa.func.count().filter(s.c.enabled.is_(False)))
                .where(s.c.tenant_id.in_(chosen), s.c.deleted_at.is_(None))
                .group_by(s.c.tenant_id))
        waiting = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
        dlvs = (sa.select(d.c.tenant_id, d.c.status, sa.func.count())
                .where(d.c.tenant_id.in_(chosen), d.c.status.in_(waiting))
                .group_by(d.c.tenant_id, d.c.status))
        subscriptions: dict[str, tuple[int, int, int]] = {}
        deliveries: dict[str, dict[str, int]] = {}
        async with self.engine.connect() as conn:
            for tenant_id, total, failing, disabled in await conn.execute(subs):
                subscriptions[tenant_id] = (total, failing or 0, disabled or 0)
            for tenant_id, status, n in await conn.execute(dlvs):
                deliveries.setdefault(tenant_id, {})[status] = n
        return {
            tenant_id: TenantCounts(
                *subscriptions.get(tenant_id, (0, 0, 0)),
                pending=deliveries.get(tenant_id, {}).get(DeliveryStatus.PENDING, 0),
                failed=deliveries.get(tenant_id, {}).get(DeliveryStatus.FAILED, 0))
            for tenant_id in subscriptions.keys() | deliveries.keys()
        }

    async def tenant_names(self, tenant_ids: Sequence[str | None]) -> dict[str, str]:
        """{id: name ("" for none)} of those of these tenants that exist: a deleted tenant,
        still named by its deliveries, is left out."""
        chosen = sorted({t for t in tenant_ids if t})
        if not chosen:
            return {}
        t = tenant_table
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(t.c.id, t.c.name).where(
                t.c.id.in_(chosen), t.c.deleted_at.is_(None)))
            return {r.id: r.name or "" for r in rows}

    async def recent_event_types(self, tenant_id: str, looked_at: int = 500) -> list[str]:
        """The event types of the tenant's latest ``looked_at`` deliveries, newest first,
        each once: what the portal's forms offer until there is a catalog of types."""
        d = delivery_table
        latest = (sa.select(d.c.event_type, d.c.id).where(d.c.tenant_id == tenant_id)
                  .order_by(d.c.id.desc()).limit(looked_at).subquery())
        stmt = (sa.select(latest.c.event_type).group_by(latest.c.event_type)
                .order_by(sa.func.max(latest.c.id).desc()).limit(50))
        async with self.engine.connect() as conn:
            return list((await conn.execute(stmt)).scalars())
