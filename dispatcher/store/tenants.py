"""Tenants: the publisher's customers, by the publisher's own ids. Put (create or replace),
read, list, and delete: a deleted tenant's subscriptions are deleted (their open deliveries
``cancelled``) and its keys stop working at once; its events stay until pruned."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..clock import utcnow
from ..database import Database
from ..models import (
    api_key_table,
    delivery_table,
    portal_link_table,
    subscription_table,
    tenant_table,
)
from ..vocabulary import DeliveryStatus
from .base import StoreBase
from .rows import OPEN_STATUSES, Page, TenantNotFound, row_dict

_t = tenant_table
LIVE = _t.c.deleted_at.is_(None)
# The lock a broadcast shares and every tenant's deletion takes ("*" is no tenant's id).
ALL_TENANTS = "*"
TENANT_COLUMNS = (_t.c.id, _t.c.name, _t.c["metadata"], _t.c.created_at, _t.c.updated_at)


async def lock_tenant(db: Database, conn: AsyncConnection, tenant_id: str) -> None:
    """``TenantNotFound`` unless the tenant exists; and it stays so to the end of ``conn``'s
    transaction: a concurrent delete waits for what is being made for it (and then deletes
    that too), ``Database.tenant_locks``."""
    if (locks := db.tenant_locks([tenant_id])) is not None:
        await conn.execute(locks)
    found = await conn.scalar(sa.select(_t.c.id).where(_t.c.id == tenant_id, LIVE))
    if found is None:
        raise TenantNotFound(tenant_id)


class Tenants(StoreBase):
    async def put_tenant(
        self, tenant_id: str, name: str | None, metadata: dict[str, Any],
    ) -> tuple[dict[str, Any], bool]:
        """Create the tenant, or replace its name and metadata; and whether it was created.
        A deleted tenant's id makes a new tenant (created now, with nothing of the old)."""
        now = utcnow()
        values = {"name": name, "metadata": metadata, "updated_at": now}
        for tries_left in (1, 0):
            try:
                async with self.writer.begin() as conn:
                    found = (await conn.execute(
                        sa.select(_t.c.deleted_at).where(_t.c.id == tenant_id)
                        .with_for_update())).first()
                    created = found is None or found.deleted_at is not None
                    if found is None:
                        await conn.execute(sa.insert(_t).values(
                            values | {"id": tenant_id, "created_at": now}))
                    else:
                        fresh = {"created_at": now, "deleted_at": None} if created else {}
                        await conn.execute(
                            sa.update(_t).where(_t.c.id == tenant_id).values(values | fresh))
                    row = (await conn.execute(
                        sa.select(*TENANT_COLUMNS).where(_t.c.id == tenant_id))).one()
                return row_dict(row), created
            except IntegrityError:
                if not tries_left:  # made by a concurrent first PUT: now it is an update
                    raise
        raise AssertionError("unreachable")

    async def get_tenant(self, tenant_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                sa.select(*TENANT_COLUMNS).where(_t.c.id == tenant_id, LIVE))).first()
        if row is None:
            raise TenantNotFound(tenant_id)
        return row_dict(row)

    async def list_tenants(self, cursor: str | None, limit: int, order: str) -> Page:
        """Newest first (or oldest, ``asc``): by creation time, then id, since the ids are
        the publisher's and say nothing of time; the cursor is still the last id seen (a
        deleted tenant's row stays, so its place is kept)."""
        return await self._page_by_creation(sa.select(*TENANT_COLUMNS).where(LIVE),
                                            _t.c.created_at, _t.c.id, cursor, limit, order)

    async def count_tenant_holdings(self, tenant_id: str) -> dict[str, int]:
        """What ``delete_tenant`` would take now: its live ``subscriptions``, their open
        ``deliveries`` (cancelled) and its live ``keys``; ``TenantNotFound`` if none."""
        s, d, k = subscription_table, delivery_table, api_key_table
        counts = {
            "subscriptions": sa.select(sa.func.count()).select_from(s).where(
                s.c.tenant_id == tenant_id, s.c.deleted_at.is_(None)),
            "deliveries": sa.select(sa.func.count()).select_from(d).where(
                d.c.tenant_id == tenant_id, d.c.status.in_(OPEN_STATUSES)),
            "keys": sa.select(sa.func.count()).select_from(k).where(
                k.c.tenant_id == tenant_id, k.c.deleted_at.is_(None)),
        }
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(
                _t.c.id, *(q.scalar_subquery().label(n) for n, q in counts.items()),
            ).where(_t.c.id == tenant_id, LIVE))).first()
        if row is None:
            raise TenantNotFound(tenant_id)
        return {name: int(row._mapping[name]) for name in counts}

    async def delete_tenant(self, tenant_id: str) -> dict[str, int]:
        """Delete the tenant, its subscriptions (their open deliveries cancelled), its keys
        and its portal links, in one transaction; how many of each (as
        ``count_tenant_holdings``)."""
        s, d, k = subscription_table, delivery_table, api_key_table
        now = utcnow()
        async with self.writer.begin() as conn:
            locks = self.db.tenant_locks([tenant_id, ALL_TENANTS], exclusive=True)
            if locks is not None:
                await conn.execute(locks)  # new events, keys, subscriptions of it first
            gone = await conn.execute(
                sa.update(_t).where(_t.c.id == tenant_id, LIVE).values(deleted_at=now))
            if gone.rowcount == 0:
                raise TenantNotFound(tenant_id)
            # Deliveries before subscriptions, the order recording takes them in: no deadlock.
            deliveries = (await conn.execute(
                sa.update(d).where(d.c.tenant_id == tenant_id, d.c.status.in_(OPEN_STATUSES))
                .values(status=DeliveryStatus.CANCELLED, next_attempt_at=None,
                        updated_at=now))).rowcount
            subscriptions = (await conn.execute(
                sa.update(s).where(s.c.tenant_id == tenant_id, s.c.deleted_at.is_(None))
                .values(deleted_at=now, enabled=False, updated_at=now))).rowcount
            keys = (await conn.execute(
                sa.update(k).where(k.c.tenant_id == tenant_id, k.c.deleted_at.is_(None))
                .values(deleted_at=now).returning(k.c.id))).scalars().all()
            # Revoked, not only dead with the tenant: a tenant made again with this id
            # must not open to the old links.
            await conn.execute(
                sa.update(portal_link_table).where(portal_link_table.c.tenant_id == tenant_id,
                                                   portal_link_table.c.revoked_at.is_(None))
                .values(revoked_at=now))
        for key_id in keys:
            self._forget_key(key_id)
        return {"subscriptions": subscriptions, "deliveries": deliveries, "keys": len(keys)}
