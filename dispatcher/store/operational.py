"""Operational events written: in the transaction of the change they report (a recording,
or an operator disabling a subscription), as events of no tenant that fan out only to
admins' subscriptions of no tenant (each tells of any tenant's subscription)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import ids
from ..database import Database
from ..models import api_key_table, event_table, subscription_table
from ..operational import Notice
from ..vocabulary import Role, Trigger
from .fan_out import _insert_deliveries, fan_out, live_subscriptions, matching
from .rows import encode_payload, event_body

# The publisher of record of operational events: no API key's id looks like it.
PUBLISHER = "dispatcher"


@functools.cache
def _operators() -> sa.Select[Any]:
    """The subscriptions operational events may reach: of no tenant, made by an admin key."""
    s, k = subscription_table, api_key_table
    admins = sa.select(k.c.id).where(k.c.role == Role.ADMIN.value)
    return live_subscriptions().where(s.c.tenant_id.is_(None), s.c.owner.in_(admins))


async def publish(db: Database, conn: AsyncConnection, notices: Sequence[Notice],
                  now: datetime) -> int:
    """Store ``notices`` as events and their deliveries in ``conn``'s transaction; how many
    deliveries they made (the caller wakes the workers once it has committed)."""
    if not notices:
        return 0
    subs = (await conn.execute(_operators())).all()
    events: list[dict[str, Any]] = []
    deliveries: list[tuple[Any, ...]] = []
    for notice in notices:
        event_id = ids.new_id("evt")
        events.append({"id": event_id, "type": notice.type.value,
                       "payload": encode_payload(notice.type.value, now, notice.data),
                       "publisher": PUBLISHER, "idempotency_key": None, "tenant_id": None,
                       "broadcast": False, "created_at": now})
        chosen = matching(subs, notice.type).for_event(
            functools.partial(event_body, notice.type.value, now, notice.data))
        deliveries += fan_out(event_id, notice.type.value, chosen, now, Trigger.SCHEDULED)
    await conn.execute(sa.insert(event_table), events)
    await _insert_deliveries(db, conn, deliveries, subs, now)
    return len(deliveries)
