"""API keys: made, checked, listed and deleted; kept by the hash of the plain key only."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .. import ids
from ..clock import utcnow
from ..models import api_key_table
from ..vocabulary import Role
from .base import StoreBase
from .rows import KeyRow, NotFound, Page, hash_key
from .tenants import lock_tenant


class Keys(StoreBase):
    async def create_key(self, role: str, name: str, plain: str | None = None,
                         tenant_id: str | None = None) -> dict[str, Any]:
        """A new key; with ``tenant_id`` (subscribers only, the caller checks) scoped to that
        tenant, which must exist (``TenantNotFound``)."""
        plain = plain or "dk_" + secrets.token_urlsafe(32)
        row = {
            "id": ids.new_id("key"),
            "role": role,
            "name": name,
            "key_hash": hash_key(plain),
            "tenant_id": tenant_id,
            "created_at": utcnow(),
            "deleted_at": None,
        }
        async with self.writer.begin() as conn:
            if tenant_id is not None:
                await lock_tenant(self.db, conn, tenant_id)
            await conn.execute(sa.insert(api_key_table), row)
        return row | {"key": plain}

    async def ensure_admin(self, token: str | None) -> str | None:
        """Make sure an admin key exists; returns a newly made plain key, if one was made."""
        k = api_key_table
        async with self.engine.connect() as conn:
            if token is not None:
                found = await conn.scalar(
                    sa.select(k.c.id).where(k.c.key_hash == hash_key(token))
                )
            else:
                found = await conn.scalar(
                    sa.select(k.c.id).where(k.c.role == Role.ADMIN, k.c.deleted_at.is_(None))
                )
            if found is not None:
                return None
        try:
            made = await self.create_key(Role.ADMIN, "bootstrap", token)
        except IntegrityError:  # another process made it at the same time
            return None
        return None if token is not None else str(made["key"])

    async def authenticate(self, plain: str, *, cached: bool = False) -> KeyRow | None:
        """The row (``id``, ``role``, ``name``, ``key_hash``, ``tenant_id``) of the live key
        ``plain``, or None.

        ``cached``: a key this process has seen live before is taken from memory, without a
        query; it may have been deleted since (by another process), so only a caller whose
        own transaction checks the key again may ask (``accept_event(check_key=True)``).
        Keys never change role, and unknown keys are never remembered.
        """
        k = api_key_table
        digest = hash_key(plain)
        if cached and (known := self._known_keys.get(digest)) is not None:
            return known.copy()
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(k.c.id, k.c.role, k.c.name, k.c.key_hash, k.c.tenant_id).where(
                        k.c.key_hash == digest, k.c.deleted_at.is_(None)
                    )
                )
            ).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        found = KeyRow(id=row.id, role=Role(row.role), name=row.name, key_hash=row.key_hash,
                       tenant_id=row.tenant_id)
        self._remember_key(digest, found.copy())
        return found

    async def list_keys(self, cursor: str | None, limit: int, order: str,
                        *, tenant_id: str | None = None) -> Page:
        k = api_key_table
        stmt = sa.select(k.c.id, k.c.role, k.c.name, k.c.tenant_id, k.c.created_at).where(
            k.c.deleted_at.is_(None)
        )
        if tenant_id is not None:
            stmt = stmt.where(k.c.tenant_id == tenant_id)
        return await self._page(stmt, k.c.id, cursor, limit, order)

    async def delete_key(self, key_id: str) -> None:
        k = api_key_table
        async with self.writer.begin() as conn:
            result = await conn.execute(
                sa.update(k)
                .where(k.c.id == key_id, k.c.deleted_at.is_(None))
                .values(deleted_at=utcnow())
            )
        self._forget_key(key_id)
        if result.rowcount == 0:
            raise NotFound(key_id)

    async def admin_key_hash(self, key_id: str) -> str | None:
        """The hash of the live admin key ``key_id``: what signs its dashboard sessions, so
        that deleting the key ends them at once."""
        k = api_key_table
        async with self.engine.connect() as conn:
            found: str | None = await conn.scalar(sa.select(k.c.key_hash).where(
                k.c.id == key_id, k.c.role == Role.ADMIN, k.c.deleted_at.is_(None)))
        return found
