"""What the store takes and gives back: its errors, typed rows, and the pure helpers its
roles share (event bodies, time windows as id ranges, signing keys in force)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict

import sqlalchemy as sa

from .. import ids
from ..clock import rfc3339
from ..signing import SigningKey, secret_key
from ..vocabulary import AttemptOutcome, DeliveryStatus, Role, Trigger

# A delivery still to be sent (or to be sent once its subscription is enabled again).
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.HELD)
# An id and its row's created_at come from two clock reads; id bounds allow for that.
ID_CLOCK_SLACK = timedelta(seconds=5)


class NotFound(Exception):
    """The row does not exist, or the caller may not see it."""


class Conflict(Exception):
    """The request cannot be done in the row's present state."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Invalid(Exception):
    """The request asks for what can never be (a 422): nothing was stored."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class KeyDeleted(Exception):
    """The API key the request came with was deleted: nothing was stored."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was sent before with a different body: nothing was stored."""


class TenantNotFound(Exception):
    """The tenant named does not exist (or is not the caller's to name): nothing was stored."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(tenant_id)
        self.tenant_id = tenant_id


class KeyRow(TypedDict):
    """A live API key as ``authenticate`` finds it (and its cache keeps it)."""

    id: str
    role: Role
    name: str
    key_hash: str
    tenant_id: str | None


@dataclass(frozen=True, slots=True)
class Scope:
    """What a key below admin may see (an admin's calls pass ``None``: everything).

    A key scoped to a tenant sees every subscription of that tenant, whoever made it, and
    their deliveries; an unscoped subscriber key sees the subscriptions it made itself.
    """

    key_id: str
    tenant_id: str | None = None

    def subscriptions(self, s: sa.Table) -> sa.ColumnElement[bool]:
        """The subscriptions (``s``: the subscription table) in this scope."""
        if self.tenant_id is not None:
            return s.c.tenant_id == self.tenant_id
        return s.c.owner == self.key_id

    def deliveries(self, d: sa.Table, s: sa.Table) -> sa.ColumnElement[bool]:
        """The deliveries (``d``) of this scope's subscriptions (``s``): for a tenant a range
        of the delivery table's own ``(tenant_id, id)`` index, as they carry it."""
        if self.tenant_id is not None:
            return d.c.tenant_id == self.tenant_id
        return d.c.subscription_id.in_(sa.select(s.c.id).where(s.c.owner == self.key_id))


class EventRow(TypedDict):
    """A new event, as inserted (``accept_event``)."""

    id: str
    type: str
    publisher: str
    idempotency_key: str | None
    tenant_id: str | None
    broadcast: bool
    created_at: datetime
    payload: bytes
    trace_context: str | None


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which deliveries an operator means: for replay, recover and the CLI."""

    status: str = DeliveryStatus.FAILED
    subscription_id: str | None = None
    event_type: str | None = None
    tenant_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(slots=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(slots=True)
class Job:
    """A claimed delivery, with what the sender needs."""

    delivery_id: str
    event_id: str
    subscription_id: str
    number: int  # this attempt's number over the delivery's life
    round_number: int  # this attempt's number in the current retry round
    trigger: str  # a Trigger, as stored
    resume_status: str | None  # a manual attempt's: the status to go back to unless it succeeds
    url: str
    headers: dict[str, str]
    keys: list[SigningKey]
    payload: bytes
    rate_limit: int | None = None  # the subscription's rate_limit_per_second
    failing_since: datetime | None = None  # the subscription's, when claimed
    resume_at: datetime | None = None  # a manual attempt's: the pending delivery's due time
    retry_schedule: tuple[float, ...] | None = None  # the subscription's own, if any
    timeout: float | None = None  # the subscription's timeout_seconds, if any
    sequence: int | None = None  # its place among an ordered subscription's deliveries
    event_type: str = ""
    tenant_id: str | None = None  # its subscription's
    trace_context: str | None = None  # the accepting request's traceparent (tracing.py)
    due_at: datetime | None = None  # when it came due (a first attempt: when accepted)

    @property
    def paced(self) -> bool:
        """A scheduled retry: it yields the event loop to first attempts (``pacing``)."""
        return self.number > 1 and self.trigger == Trigger.SCHEDULED


@dataclass(slots=True)
class AttemptRecord:
    """One finished attempt and the delivery state it leads to."""

    job: Job
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    outcome: AttemptOutcome
    status: str  # the delivery's new status (a DeliveryStatus)
    next_attempt_at: datetime | None
    gone: bool = False
    id: str = field(default_factory=lambda: ids.new_id("att"))


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The state of the queue right now (``Store.queue_stats``)."""

    pending: int  # waiting for their next attempt, or in flight
    held: int  # of disabled subscriptions, sent when re-enabled
    failed: int  # retries exhausted or refused, until replayed or pruned
    oldest_due_seconds: float  # how long the oldest due, unclaimed delivery has waited
    disabled_subscriptions: int
    failing_subscriptions: int  # enabled, with failures since their last success


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def event_body(event_type: str, created_at: datetime, data: Any) -> dict[str, Any]:
    """The body every subscriber receives for this event (what a filter looks at)."""
    return {"type": event_type, "timestamp": rfc3339(created_at), "data": data}


def encode_payload(event_type: str, created_at: datetime, data: Any) -> bytes:
    """The exact bytes every subscriber receives for this event."""
    body = event_body(event_type, created_at, data)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_json(value: Any) -> str:
    """One text per JSON value: keys sorted, no spaces (a number stays as parsed: 1 ≠ 1.0)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def same_request(payload: bytes, event_type: str, data: Any) -> bool:
    """Whether an event stored as ``payload`` (``encode_payload``) was asked for with this
    ``event_type`` and ``data``, whatever the key order and spacing of either request."""
    stored = json.loads(payload)
    return bool(stored["type"] == event_type
                and canonical_json(stored["data"]) == canonical_json(data))


def valid_keys(secret_list: Sequence[dict[str, Any]], now: datetime) -> list[SigningKey]:
    """The signing keys in force at ``now``: the newest, and older ones in their grace."""
    keys: list[SigningKey] = []
    for entry in secret_list:
        expires = entry.get("expires_at")
        if expires is None or datetime.fromisoformat(expires) > now:
            keys.append(secret_key(entry["secret"]))
    return keys


def row_dict(r: sa.Row[*tuple[Any, ...]]) -> dict[str, Any]:
    return dict(r._mapping)


def slack(when: datetime, direction: int) -> datetime:
    """``when`` moved by the id clock slack, staying within datetime's range."""
    try:
        return when + direction * ID_CLOCK_SLACK
    except OverflowError:
        return when


def created_between(
    table: sa.Table, prefix: str, since: datetime | None, until: datetime | None,
    *, since_inclusive: bool = True,
) -> list[sa.ColumnElement[bool]]:
    """``created_at`` in [since, until), also as a range of the time-ordered primary key so
    the database scans the window instead of filtering every row."""
    c = table.c
    where: list[sa.ColumnElement[bool]] = []
    if since is not None:
        where += [c.created_at >= since if since_inclusive else c.created_at > since,
                  c.id >= ids.time_bound(prefix, slack(since, -1))]
    if until is not None:
        where += [c.created_at < until, c.id < ids.time_bound(prefix, slack(until, +1))]
    return where
