"""Subscriptions: made, read, changed (enabling sends what was held, disabling holds what
is pending), deleted (what is open is cancelled), and their signing secrets rotated."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .. import event_types, ids
from ..clock import utcnow
from ..models import delivery_table, subscription_table
from ..operational import disabled as disabled_notice
from ..signing import generate_secret, scheme_of
from ..vocabulary import DeliveryStatus, DisabledReason, SignatureScheme
from . import operational, ordering
from .base import StoreBase
from .health import hold_pending
from .rows import OPEN_STATUSES, Conflict, Invalid, NotFound, Page, Scope, row_dict
from .tenants import lock_tenant


def secret_of_scheme(secret: str | None, scheme: str) -> str:
    """``secret``, or a new one, for a subscription signed with ``scheme``; Invalid when a
    given secret is of the other scheme."""
    if secret is None:
        return generate_secret(scheme)
    if scheme_of(secret) != scheme:
        wanted = ("an Ed25519 private key, whsk_…" if scheme == SignatureScheme.V1A
                  else "a shared secret, whsec_…")
        raise Invalid("validation_error", f"secret: a {scheme} subscription's secret is "
                      f"{wanted}")
    return secret


def _no_news_for_tenants(patterns: Any, tenant_id: str | None) -> None:
    """A tenant's subscription may not name operational events: they tell of every tenant."""
    if tenant_id is not None and (named := event_types.reaches_reserved(patterns)):
        raise Invalid("reserved_event_type", f"event_types: {named[0]} names dispatcher's "
                      "operational events, which only an admin's subscriptions of no tenant "
                      "receive")


class Subscriptions(StoreBase):
    async def create_subscription(
        self, owner: str, fields: dict[str, Any], max_per_owner: int | None = None
    ) -> dict[str, Any]:
        """A new subscription made by the key ``owner``; with ``fields["tenant_id"]``, the
        tenant's (``TenantNotFound`` unless it exists). ``max_per_owner`` bounds the live
        subscriptions of the tenant, or else of the key."""
        now = utcnow()
        tenant_id = fields.get("tenant_id")
        scheme = fields.get("signature_scheme") or SignatureScheme.V1
        row = {
            "id": ids.new_id("sub"),
            "owner": owner,
            "tenant_id": tenant_id,
            "url": fields["url"],
            "event_types": fields.get("event_types") or ["*"],
            "headers": fields.get("headers") or {},
            "description": fields.get("description") or "",
            "secrets": self._sealed([{"secret": secret_of_scheme(fields.get("secret"), scheme),
                                      "expires_at": None}]),
            "signature_scheme": scheme,
            "ordered": bool(fields.get("ordered")),
            "enabled": fields.get("enabled", True),
            "disabled_reason": None if fields.get("enabled", True) else DisabledReason.MANUAL,
            "rate_limit_per_second": fields.get("rate_limit_per_second"),
            "filter": fields.get("filter"),
            "retry_schedule": fields.get("retry_schedule"),
            "timeout_seconds": fields.get("timeout_seconds"),
            "failing_since": None,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        _no_news_for_tenants(row["event_types"], tenant_id)
        s = subscription_table
        async with self.writer.begin() as conn:
            if tenant_id is not None:
                await lock_tenant(self.db, conn, tenant_id)
            if max_per_owner is not None:
                mine = (s.c.tenant_id == tenant_id if tenant_id is not None
                        else sa.and_(s.c.owner == owner, s.c.tenant_id.is_(None)))
                owned = await conn.scalar(
                    sa.select(sa.func.count()).select_from(s)
                    .where(mine, s.c.deleted_at.is_(None)))
                if (owned or 0) >= max_per_owner:
                    whose = "this tenant already has" if tenant_id else "this key already owns"
                    raise Conflict("too_many_subscriptions",
                                   f"{whose} {owned} subscriptions, the most "
                                   "allowed (DISPATCHER_MAX_SUBSCRIPTIONS_PER_OWNER)")
            await conn.execute(sa.insert(s), row)
        return self._opened(row)

    def _subscription_query(self, scope: Scope | None) -> sa.Select[Any]:
        s = subscription_table
        stmt = sa.select(s).where(s.c.deleted_at.is_(None))
        if scope is not None:
            stmt = stmt.where(scope.subscriptions(s))
        return stmt

    async def list_subscriptions(
        self, scope: Scope | None, cursor: str | None, limit: int, order: str,
        *, tenant_id: str | None = None,
    ) -> Page:
        stmt = self._subscription_query(scope)
        if tenant_id is not None:
            stmt = stmt.where(subscription_table.c.tenant_id == tenant_id)
        page = await self._page(stmt, subscription_table.c.id, cursor, limit, order)
        page.rows = [self._opened(r) for r in page.rows]
        return page

    async def get_subscription(self, sub_id: str, scope: Scope | None) -> dict[str, Any]:
        s = subscription_table
        async with self.engine.connect() as conn:
            stmt = self._subscription_query(scope).where(s.c.id == sub_id)
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(sub_id)
        return self._opened(row_dict(row))

    async def update_subscription(
        self, sub_id: str, scope: Scope | None, changes: dict[str, Any]
    ) -> dict[str, Any]:
        s, d = subscription_table, delivery_table
        now = utcnow()
        async with self.writer.begin() as conn:
            stmt = self._subscription_query(scope).where(s.c.id == sub_id)
            current = (await conn.execute(stmt)).first()
            if current is None:
                raise NotFound(sub_id)
            values = dict(changes)
            _no_news_for_tenants(values.get("event_types", ()), current.tenant_id)
            settle = False  # whether an ordered subscription's head may have changed
            if "tenant_id" in values and values.pop("tenant_id") != current.tenant_id:
                raise Invalid("tenant_immutable", "tenant_id: a subscription's tenant cannot "
                              "change; make a new subscription for the other tenant")
            scheme = values.get("signature_scheme") or current.signature_scheme
            if "secret" in values or scheme != current.signature_scheme:
                # A new scheme takes a new key at once: the old one cannot sign for it.
                secret = secret_of_scheme(values.pop("secret", None), scheme)
                values["secrets"] = self._sealed([{"secret": secret, "expires_at": None}])
            if "enabled" in values:
                if values["enabled"] and not current.enabled:
                    values["disabled_reason"] = None
                    values["failing_since"] = None
                    # Held deliveries go out now, oldest first (the claim orders by due
                    # time), each with a fresh retry budget.
                    await conn.execute(
                        sa.update(d)
                        .where(d.c.subscription_id == sub_id, d.c.status == DeliveryStatus.HELD)
                        .values(status=DeliveryStatus.PENDING,
                                # An ordered one's wait behind their head (settled below).
                                next_attempt_at=sa.case((d.c.sequence.is_(None),
                                                         d.c.created_at)),
                                retry_base=d.c.attempts, updated_at=now)
                    )
                    settle = True
                    await self.db.announce(conn)
                elif not values["enabled"] and current.enabled:
                    values["disabled_reason"] = DisabledReason.MANUAL
                    await hold_pending(conn, [sub_id], now)
                    await operational.publish(self.db, conn, [disabled_notice(
                        sub_id, current.tenant_id, DisabledReason.MANUAL)], now)
            if values.get("ordered") is False and current.ordered:
                # No longer ordered: those waiting behind the head are all due now.
                await conn.execute(
                    sa.update(d)
                    .where(d.c.subscription_id == sub_id, d.c.status == DeliveryStatus.PENDING,
                           d.c.sequence.is_not(None), d.c.next_attempt_at.is_(None))
                    .values(next_attempt_at=d.c.created_at, updated_at=now))
                await self.db.announce(conn)
            values["updated_at"] = now
            await conn.execute(sa.update(s).where(s.c.id == sub_id).values(**values))
            if settle:
                await conn.run_sync(ordering.settle, [sub_id], now)
            row = (await conn.execute(sa.select(s).where(s.c.id == sub_id))).one()
        self.wakeup.notify()
        return self._opened(row_dict(row))

    async def delete_subscription(self, sub_id: str, scope: Scope | None) -> None:
        s, d = subscription_table, delivery_table
        now = utcnow()
        async with self.writer.begin() as conn:
            live = sa.select(s.c.id).where(s.c.id == sub_id, s.c.deleted_at.is_(None))
            if scope is not None:
                live = live.where(scope.subscriptions(s))
            # Deliveries before the subscription, the order recording takes them in: a
            # deletion and a recording never wait for each other in a circle (a deadlock).
            await conn.execute(
                sa.update(d)
                .where(d.c.subscription_id.in_(live), d.c.status.in_(OPEN_STATUSES))
                .values(status=DeliveryStatus.CANCELLED, next_attempt_at=None, updated_at=now)
            )
            result = await conn.execute(sa.update(s).where(s.c.id.in_(live))
                                        .values(deleted_at=now, enabled=False, updated_at=now))
            if result.rowcount == 0:
                raise NotFound(sub_id)

    async def rotate_secret(
        self, sub_id: str, scope: Scope | None, grace_seconds: float, new_secret: str | None
    ) -> dict[str, Any]:
        s = subscription_table
        now = utcnow()
        async with self.writer.begin() as conn:
            current = (
                await conn.execute(self._subscription_query(scope).where(s.c.id == sub_id))
            ).first()
            if current is None:
                raise NotFound(sub_id)
            expires = (now + timedelta(seconds=grace_seconds)).isoformat()
            kept = [
                e for e in current.secrets[1:]
                if e["expires_at"] is not None and datetime.fromisoformat(e["expires_at"]) > now
            ]
            previous = {"secret": current.secrets[0]["secret"], "expires_at": expires}
            fresh = self._sealed([{"secret": secret_of_scheme(
                new_secret, current.signature_scheme), "expires_at": None}])[0]
            listed = [fresh] + ([previous] if grace_seconds > 0 else []) + kept
            await conn.execute(
                sa.update(s).where(s.c.id == sub_id).values(secrets=listed, updated_at=now)
            )
            row = (await conn.execute(sa.select(s).where(s.c.id == sub_id))).one()
        return self._opened(row_dict(row))

    async def reseal_secrets(self, batch: int = 500) -> int:
        """Seal every signing secret with the newest key (``dispatcher secrets reseal``)."""
        s = subscription_table
        done, after = 0, ""
        while True:
            async with self.writer.begin() as conn:
                found = (await conn.execute(
                    sa.select(s.c.id, s.c.secrets).where(s.c.id > after)
                    .order_by(s.c.id).limit(batch))).all()
                for row in found:
                    resealed = [e | {"secret": self.box.reseal(e["secret"])}
                                for e in row.secrets]
                    await conn.execute(
                        sa.update(s).where(s.c.id == row.id).values(secrets=resealed))
            if not found:
                return done
            done += len(found)
            after = found[-1].id
