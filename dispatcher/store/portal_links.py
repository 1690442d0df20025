"""Portal links: made for a tenant (the secret is shown once, kept as a hash), opened into
a portal session, revoked. A link works until it expires, is revoked, or its tenant is
deleted; every portal request checks its link here, so each of those ends sessions at once."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .. import ids
from ..clock import utcnow
from ..models import portal_link_table, tenant_table
from .base import StoreBase
from .rows import hash_key
from .tenants import LIVE, lock_tenant

_p = portal_link_table
TOKEN_PREFIX = "ptk_"  # a link's secret, so that a leaked one is recognisable


@dataclass(frozen=True, slots=True)
class PortalLink:
    """A live link: what a portal session may do, for whom, until when."""

    id: str
    tenant_id: str
    read_only: bool
    expires_at: datetime
    token_hash: str  # what the session cookie is signed with: the database's, never sent


def _live(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(_p.c.revoked_at.is_(None), _p.c.expires_at > now, LIVE)


def _link(row: Any) -> PortalLink:
    return PortalLink(row.id, row.tenant_id, row.read_only, row.expires_at, row.token_hash)


class PortalLinks(StoreBase):
    async def create_portal_link(self, tenant_id: str, expires_in_seconds: int,
                                 read_only: bool) -> tuple[PortalLink, str]:
        """A new link for the tenant (``TenantNotFound`` unless it exists), and its secret,
        which is not kept."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        link = PortalLink(ids.new_id("ptl"), tenant_id, read_only,
                          now + timedelta(seconds=expires_in_seconds), hash_key(token))
        async with self.writer.begin() as conn:
            await lock_tenant(self.db, conn, tenant_id)
            await conn.execute(sa.insert(_p), asdict(link) | {"created_at": now,
                                                               "revoked_at": None})
        return link, token

    async def revoke_portal_links(self, tenant_id: str) -> int:
        """Revoke every link of the tenant made so far (``TenantNotFound`` unless it
        exists); how many were still unrevoked."""
        async with self.writer.begin() as conn:
            await lock_tenant(self.db, conn, tenant_id)
            done = await conn.execute(
                sa.update(_p).where(_p.c.tenant_id == tenant_id, _p.c.revoked_at.is_(None))
                .values(revoked_at=utcnow()))
        return int(done.rowcount or 0)

    async def portal_link(self, *, link_id: str | None = None,
                          token: str | None = None) -> PortalLink | None:
        """The live link with this id or secret; None when there is none, it expired, was
        revoked, or its tenant is deleted."""
        stmt = (sa.select(_p.c.id, _p.c.tenant_id, _p.c.read_only, _p.c.expires_at,
                          _p.c.token_hash)
                .join(tenant_table, tenant_table.c.id == _p.c.tenant_id)
                .where(_live(utcnow())))
        if link_id is not None:
            stmt = stmt.where(_p.c.id == link_id)
        elif token is not None:
            stmt = stmt.where(_p.c.token_hash == hash_key(token))
        else:
            raise TypeError("give link_id or token")
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _link(row)

