"""All reads and writes of the database go through here.

``accept_event`` stores an event and its deliveries in one transaction; ``claim_due``
leases due deliveries for a worker; ``record_attempts`` stores a batch of attempts and the
deliveries' new states in one transaction. The rest serves the API.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from . import event_types, ids
from .database import Database, unleased_pending
from .models import (
    api_key_table,
    attempt_table,
    delivery_table,
    event_table,
    subscription_table,
    utcnow,
)
from .sealing import SecretBox, parse_keys
from .signing import generate_secret, secret_key

OPEN_STATUSES = ("pending", "held")
MAX_KNOWN_KEYS = 10_000  # authenticate(cached=True) forgets them all past this
EVENT_COLUMNS = ("id", "type", "payload", "publisher", "idempotency_key", "created_at")
DELIVERY_COLUMNS = ("id", "event_id", "event_type", "subscription_id", "status", "attempts",
                    "retry_base", "next_trigger", "next_attempt_at", "created_at", "updated_at")
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


class KeyDeleted(Exception):
    """The API key the request came with was deleted: nothing was stored."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was sent before with a different body: nothing was stored."""


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_payload(event_type: str, created_at: datetime, data: Any) -> bytes:
    """The exact bytes every subscriber receives for this event."""
    body = {"type": event_type, "timestamp": rfc3339(created_at), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_json(value: Any) -> str:
    """One text per JSON value: keys sorted, no spaces (a number stays as parsed: 1 ≠ 1.0)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def same_request(payload: bytes, event_type: str, data: Any) -> bool:
    """Whether an event stored as ``payload`` (``encode_payload``) was asked for with this
    ``event_type`` and ``data``, whatever the key order and spacing of either request."""
    stored = json.loads(payload)
    return stored["type"] == event_type and canonical_json(stored["data"]) == canonical_json(data)


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which deliveries an operator means: for replay, recover and the CLI."""

    status: str = "failed"
    subscription_id: str | None = None
    event_type: str | None = None
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
    trigger: str
    resume_status: str | None  # a manual attempt's: the status to go back to unless it succeeds
    url: str
    headers: dict[str, str]
    keys: list[bytes]
    payload: bytes
    rate_limit: int | None = None  # the subscription's rate_limit_per_second
    failing_since: datetime | None = None  # the subscription's, when claimed
    resume_at: datetime | None = None  # a manual attempt's: the pending delivery's due time


@dataclass(slots=True)
class AttemptRecord:
    """One finished attempt and the delivery state it leads to."""

    job: Job
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    outcome: str  # succeeded | failed
    status: str  # the delivery's new status
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


def valid_keys(secret_list: Sequence[dict[str, Any]], now: datetime) -> list[bytes]:
    keys = []
    for entry in secret_list:
        expires = entry.get("expires_at")
        if expires is None or datetime.fromisoformat(expires) > now:
            keys.append(secret_key(entry["secret"]))
    return keys


def _created_between(
    table: sa.Table, prefix: str, since: datetime | None, until: datetime | None,
    *, since_inclusive: bool = True,
) -> list[sa.ColumnElement[bool]]:
    """``created_at`` in [since, until), also as a range of the time-ordered primary key so
    the database scans the window instead of filtering every row."""
    c = table.c
    where: list[sa.ColumnElement[bool]] = []
    if since is not None:
        where += [c.created_at >= since if since_inclusive else c.created_at > since,
                  c.id >= ids.time_bound(prefix, _slack(since, -1))]
    if until is not None:
        where += [c.created_at < until, c.id < ids.time_bound(prefix, _slack(until, +1))]
    return where


def _slack(when: datetime, direction: int) -> datetime:
    """``when`` moved by the id clock slack, staying within datetime's range."""
    try:
        return when + direction * ID_CLOCK_SLACK
    except OverflowError:
        return when


def _delivery_values(
    event_id: str, event_type: str, sub_id: str, enabled: bool, now: Any, trigger: str
) -> tuple[Any, ...]:
    """A new delivery, in the order of ``DELIVERY_COLUMNS``. ``now`` is only stored as
    times, so it may be a time already bound for the driver (``_DriverInsert.bind``)."""
    return (ids.new_id("dlv"), event_id, event_type, sub_id,
            "pending" if enabled else "held", 0, 0, trigger, now if enabled else None, now, now)


def _delivery_row(
    event_id: str, event_type: str, sub_id: str, enabled: bool, now: datetime, trigger: str
) -> dict[str, Any]:
    return dict(zip(DELIVERY_COLUMNS, _delivery_values(
        event_id, event_type, sub_id, enabled, now, trigger), strict=True))


def _prunable(older_than: datetime, include_failed: bool) -> list[sa.ColumnElement[bool]]:
    """The deliveries prune deletes: finished and created before ``older_than``."""
    d = delivery_table
    statuses = ["succeeded", "cancelled"] + (["failed"] if include_failed else [])
    # The id bound lets the primary key index narrow the scan.
    return [d.c.id < ids.time_bound("dlv", _slack(older_than, +1)), d.c.status.in_(statuses),
            d.c.created_at < older_than]


def _old_events(older_than: datetime) -> list[sa.ColumnElement[bool]]:
    """The events prune deletes once no delivery is left to them."""
    e = event_table
    return [e.c.id < ids.time_bound("evt", _slack(older_than, +1)), e.c.created_at < older_than]


async def _hold_pending(conn: Any, sub_ids: Sequence[str], now: datetime) -> None:
    """Deliveries of disabled subscriptions wait as ``held`` (not in flight ones: their
    attempt's record holds them)."""
    d = delivery_table
    await conn.execute(
        sa.update(d)
        .where(d.c.subscription_id.in_(sub_ids), d.c.status == "pending",
               sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now))
        .values(status="held", next_attempt_at=None, lease_until=None, lease_owner=None,
                updated_at=now)
    )


def _row(r: sa.Row[Any]) -> dict[str, Any]:
    return dict(r._mapping)


def _live_subscriptions() -> sa.Select[Any]:
    """What fan-out needs of every subscription that is not deleted."""
    s = subscription_table
    return sa.select(s.c.id, s.c.event_types, s.c.enabled).where(s.c.deleted_at.is_(None))


class GroupCommit:
    """Concurrent callers' writes in one transaction (group commit).

    ``await submit(item)`` queues the item and waits until the transaction holding it has
    committed; it returns the item's result, or raises its error (or the group's, when the
    whole transaction failed: then nothing of the group was stored). ``commit(items)`` runs
    one transaction for a group and returns one result per item, an exception instance for
    an item refused on its own.

    One group commits at a time (SQLite has one writer anyway); while it does, the next
    one gathers. Before each transaction the event loop turns a few times (``gather_turns``,
    no timer) so that requests already received join; a lone caller still waits for one
    transaction only, and under load one commit serves many callers. A caller that gives
    up before its group starts is left out of it; one that gives up later may still be
    committed (as with any request cut off during its commit).
    """

    def __init__(self, commit: Callable[[list[Any]], Any], max_batch: int = 64,
                 gather_turns: int = 10) -> None:
        self._commit = commit
        self.max_batch = max_batch
        self.gather_turns = gather_turns
        self._queue: list[tuple[Any, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="group-commit")
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                # Fuller groups commit less often: +20% events/s measured with 32 requests
                # in flight (benchmarks/ingest.py). An idle loop turns in microseconds; a
                # busy one serves those requests meanwhile.
                for _ in range(self.gather_turns):
                    if len(self._queue) >= self.max_batch:
                        break
                    await asyncio.sleep(0)
                taken = self._queue[:self.max_batch]
                del self._queue[:self.max_batch]
                group = [(item, future) for item, future in taken if not future.done()]
                if group:
                    await self._commit_group(group)
        finally:  # cancelled (the loop is closing): nobody may wait forever
            for _, future in self._queue:
                future.cancel()
            self._queue.clear()

    async def _commit_group(self, group: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        results: list[Any] = []
        try:
            results = list(await self._commit([item for item, _ in group]))
            if len(results) != len(group):
                raise RuntimeError(f"{len(results)} results for {len(group)} items")
        except Exception as exc:  # the transaction failed: nothing of it was stored
            results = [exc] * len(group)
        finally:
            for index, (_, future) in enumerate(group):
                if future.done():
                    continue  # its caller gave up
                if index >= len(results):  # cancelled while committing
                    future.cancel()
                elif isinstance(results[index], Exception):
                    future.set_exception(results[index])
                else:
                    future.set_result(results[index])


class _DriverInsert:
    """An ``INSERT`` of many rows handed straight to the driver (``exec_driver_sql``).

    For the deliveries of a group of events SQLAlchemy's per-row, per-column processing
    costs more than the database's own work. Here values go in as the column types would
    bind them (``bind``): the caller binds a value all rows share (a time) once. Rows go
    ``CHUNK`` to a statement (``VALUES (…), (…), …``) rather than one statement per row
    (executemany): measured on the store alone, 5 % more events/s on SQLite, 15 % on
    PostgreSQL.
    """

    CHUNK = 50

    def __init__(self, table: sa.Table, columns: Sequence[str], dialect: sa.Dialect) -> None:
        self.columns = tuple(columns)
        self.sql = self._compile(table, dialect, 1)
        self.chunk_sql = self._compile(table, dialect, self.CHUNK)
        self._processors = {
            c: table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns}

    def _compile(self, table: sa.Table, dialect: sa.Dialect, rows: int) -> str:
        stmt = sa.insert(table).values(
            [{c: sa.bindparam(f"{c}_{i}") for c in self.columns} for i in range(rows)])
        compiled = stmt.compile(dialect=dialect)
        expected = tuple(f"{c}_{i}" for i in range(rows) for c in self.columns)
        if tuple(compiled.positiontup or ()) != expected:
            raise ValueError(f"{table.name}: the statement does not take {self.columns}")
        return str(compiled)

    def bind(self, column: str, value: Any) -> Any:
        processor = self._processors[column]
        return value if processor is None or value is None else processor(value)

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """``row``, its values bound already, in the statement's order."""
        return tuple([row[c] for c in self.columns])

    def execute(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (tuples in the order of ``columns``, values bound)."""
        size = self.CHUNK
        whole = len(rows) - len(rows) % size
        if whole:
            conn.exec_driver_sql(self.chunk_sql, [
                tuple([value for row in rows[i:i + size] for value in row])
                for i in range(0, whole, size)])
        if whole < len(rows):
            conn.exec_driver_sql(self.sql, rows[whole:])


@dataclass(slots=True)
class _NewEvent:
    """An event on its way into a group commit (``Store.accept_event``)."""

    row: dict[str, Any]
    check_key: bool


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine
        self.writer = db.writer
        self.wakeup = db.wakeup
        self.box = SecretBox(parse_keys(db.settings.secret_key))
        # Events without an Idempotency-Key: concurrent requests commit together.
        self._ingest = GroupCommit(self._insert_events)
        self._inserts: dict[str, tuple[_DriverInsert, _DriverInsert]] = {}  # by dialect
        # key_hash -> {id, role, name, key_hash} of keys seen live (authenticate(cached=True)).
        self._known_keys: dict[str, dict[str, Any]] = {}

    # ---- signing secrets at rest ---------------------------------------------------------

    def _sealed(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e | {"secret": self.box.seal(e["secret"])} for e in entries]

    def _opened_secrets(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e | {"secret": self.box.open(e["secret"])} for e in entries]

    def _opened(self, row: dict[str, Any]) -> dict[str, Any]:
        return row | {"secrets": self._opened_secrets(row["secrets"])}

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

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # ---- API keys -----------------------------------------------------------------------

    async def create_key(self, role: str, name: str, plain: str | None = None) -> dict[str, Any]:
        plain = plain or "dk_" + secrets.token_urlsafe(32)
        row = {
            "id": ids.new_id("key"),
            "role": role,
            "name": name,
            "key_hash": hash_key(plain),
            "created_at": utcnow(),
            "deleted_at": None,
        }
        async with self.writer.begin() as conn:
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
                if found is not None:
                    return None
            else:
                found = await conn.scalar(
                    sa.select(k.c.id).where(k.c.role == "admin", k.c.deleted_at.is_(None))
                )
                if found is not None:
                    return None
        try:
            made = await self.create_key("admin", "bootstrap", token)
        except IntegrityError:  # another process made it at the same time
            return None
        return None if token is not None else made["key"]

    async def authenticate(self, plain: str, *, cached: bool = False) -> dict[str, Any] | None:
        """The row (``id``, ``role``, ``name``, ``key_hash``) of the live key ``plain``, or None.

        ``cached``: a key this process has seen live before is taken from memory, without a
        query; it may have been deleted since (by another process), so only a caller whose
        own transaction checks the key again may ask (``accept_event(check_key=True)``).
        Keys never change role, and unknown keys are never remembered.
        """
        k = api_key_table
        digest = hash_key(plain)
        if cached and (known := self._known_keys.get(digest)) is not None:
            return dict(known)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(k.c.id, k.c.role, k.c.name, k.c.key_hash).where(
                        k.c.key_hash == digest, k.c.deleted_at.is_(None)
                    )
                )
            ).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        if len(self._known_keys) >= MAX_KNOWN_KEYS:
            self._known_keys.clear()
        self._known_keys[digest] = _row(row)
        return _row(row)

    async def list_keys(self, cursor: str | None, limit: int, order: str) -> Page:
        k = api_key_table
        stmt = sa.select(k.c.id, k.c.role, k.c.name, k.c.created_at).where(
            k.c.deleted_at.is_(None)
        )
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

    def _forget_key(self, key_id: str) -> None:
        for digest, known in list(self._known_keys.items()):
            if known["id"] == key_id:
                del self._known_keys[digest]

    # ---- subscriptions ------------------------------------------------------------------

    async def create_subscription(
        self, owner: str, fields: dict[str, Any], max_per_owner: int | None = None
    ) -> dict[str, Any]:
        now = utcnow()
        row = {
            "id": ids.new_id("sub"),
            "owner": owner,
            "url": fields["url"],
            "event_types": fields.get("event_types") or ["*"],
            "headers": fields.get("headers") or {},
            "description": fields.get("description") or "",
            "secrets": self._sealed(
                [{"secret": fields.get("secret") or generate_secret(), "expires_at": None}]),
            "enabled": fields.get("enabled", True),
            "disabled_reason": None if fields.get("enabled", True) else "manual",
            "rate_limit_per_second": fields.get("rate_limit_per_second"),
            "failing_since": None,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }
        s = subscription_table
        async with self.writer.begin() as conn:
            if max_per_owner is not None:
                owned = await conn.scalar(
                    sa.select(sa.func.count()).select_from(s)
                    .where(s.c.owner == owner, s.c.deleted_at.is_(None)))
                if owned >= max_per_owner:
                    raise Conflict("too_many_subscriptions",
                                   f"this key already owns {owned} subscriptions, the most "
                                   "allowed (DISPATCHER_MAX_SUBSCRIPTIONS_PER_OWNER)")
            await conn.execute(sa.insert(s), row)
        return self._opened(row)

    def _subscription_query(self, owner: str | None) -> sa.Select[Any]:
        s = subscription_table
        stmt = sa.select(s).where(s.c.deleted_at.is_(None))
        if owner is not None:
            stmt = stmt.where(s.c.owner == owner)
        return stmt

    async def list_subscriptions(
        self, owner: str | None, cursor: str | None, limit: int, order: str
    ) -> Page:
        stmt = self._subscription_query(owner)
        page = await self._page(stmt, subscription_table.c.id, cursor, limit, order)
        page.rows = [self._opened(r) for r in page.rows]
        return page

    async def get_subscription(self, sub_id: str, owner: str | None) -> dict[str, Any]:
        s = subscription_table
        async with self.engine.connect() as conn:
            stmt = self._subscription_query(owner).where(s.c.id == sub_id)
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(sub_id)
        return self._opened(_row(row))

    async def update_subscription(
        self, sub_id: str, owner: str | None, changes: dict[str, Any]
    ) -> dict[str, Any]:
        s, d = subscription_table, delivery_table
        now = utcnow()
        async with self.writer.begin() as conn:
            stmt = self._subscription_query(owner).where(s.c.id == sub_id)
            current = (await conn.execute(stmt)).first()
            if current is None:
                raise NotFound(sub_id)
            values = dict(changes)
            if "secret" in values:
                values["secrets"] = self._sealed(
                    [{"secret": values.pop("secret"), "expires_at": None}])
            if "enabled" in values:
                if values["enabled"] and not current.enabled:
                    values["disabled_reason"] = None
                    values["failing_since"] = None
                    # Held deliveries go out now, oldest first (the claim orders by due
                    # time), each with a fresh retry budget.
                    await conn.execute(
                        sa.update(d)
                        .where(d.c.subscription_id == sub_id, d.c.status == "held")
                        .values(status="pending", next_attempt_at=d.c.created_at,
                                retry_base=d.c.attempts, updated_at=now)
                    )
                    await self.db.announce(conn)
                elif not values["enabled"] and current.enabled:
                    values["disabled_reason"] = "manual"
                    await _hold_pending(conn, [sub_id], now)
            values["updated_at"] = now
            await conn.execute(sa.update(s).where(s.c.id == sub_id).values(**values))
            row = (await conn.execute(sa.select(s).where(s.c.id == sub_id))).one()
        self.wakeup.notify()
        return self._opened(_row(row))

    async def delete_subscription(self, sub_id: str, owner: str | None) -> None:
        s, d = subscription_table, delivery_table
        now = utcnow()
        async with self.writer.begin() as conn:
            stmt = sa.update(s).where(s.c.id == sub_id, s.c.deleted_at.is_(None))
            if owner is not None:
                stmt = stmt.where(s.c.owner == owner)
            result = await conn.execute(stmt.values(deleted_at=now, enabled=False, updated_at=now))
            if result.rowcount == 0:
                raise NotFound(sub_id)
            await conn.execute(
                sa.update(d)
                .where(d.c.subscription_id == sub_id, d.c.status.in_(OPEN_STATUSES))
                .values(status="cancelled", next_attempt_at=None, updated_at=now)
            )

    async def rotate_secret(
        self, sub_id: str, owner: str | None, grace_seconds: float, new_secret: str | None
    ) -> dict[str, Any]:
        s = subscription_table
        now = utcnow()
        async with self.writer.begin() as conn:
            current = (
                await conn.execute(self._subscription_query(owner).where(s.c.id == sub_id))
            ).first()
            if current is None:
                raise NotFound(sub_id)
            expires = (now + timedelta(seconds=grace_seconds)).isoformat()
            kept = [
                e for e in current.secrets[1:]
                if e["expires_at"] is not None and datetime.fromisoformat(e["expires_at"]) > now
            ]
            previous = {"secret": current.secrets[0]["secret"], "expires_at": expires}
            fresh = self._sealed([{"secret": new_secret or generate_secret(),
                                   "expires_at": None}])[0]
            listed = [fresh] + ([previous] if grace_seconds > 0 else []) + kept
            await conn.execute(
                sa.update(s).where(s.c.id == sub_id).values(secrets=listed, updated_at=now)
            )
            row = (await conn.execute(sa.select(s).where(s.c.id == sub_id))).one()
        return self._opened(_row(row))

    # ---- events -------------------------------------------------------------------------

    async def accept_event(
        self, publisher: str, event_type: str, data: Any, idempotency_key: str | None,
        idempotency_ttl: float, *, check_key: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Store the event and one delivery per matching subscription, in one transaction.

        Returns the event (with ``deliveries``, the fan-out count) and whether it is new;
        an ``idempotency_key`` seen from this publisher within the TTL returns the first, or
        raises ``IdempotencyKeyReused`` when the first had another type or data.
        With ``check_key`` the API key ``publisher`` must still be live when the event is
        stored (checked in its transaction; just before it for an idempotency key), else
        ``KeyDeleted`` and nothing is stored: for callers that authenticated from memory.

        Events without an idempotency key commit in groups: concurrent requests share one
        transaction (``GroupCommit``), each still returning only once it has committed.
        """
        now = utcnow()
        event = {
            "id": ids.new_id("evt"),
            "type": event_type,
            "publisher": publisher,
            "idempotency_key": idempotency_key,
            "created_at": now,
            "payload": encode_payload(event_type, now, data),
        }
        if idempotency_key is None:
            fanned_out = await self._ingest.submit(_NewEvent(event, check_key))
            return event | {"deliveries": fanned_out}, True
        if check_key and not await self._key_is_live(publisher):
            raise KeyDeleted(publisher)
        e, d = event_table, delivery_table
        asked = (event_type, data)
        earlier = await self._idempotent_event(
            publisher, idempotency_key, now, idempotency_ttl, asked)
        if earlier is not None:
            return earlier, False
        try:
            async with self.writer.begin() as conn:
                # An expired key gives way to the new event; a live one, committed since the
                # look-up above, stays and makes the insert fail (IntegrityError below).
                await conn.execute(
                    sa.update(e)
                    .where(e.c.publisher == publisher, e.c.idempotency_key == idempotency_key,
                           e.c.created_at <= now - timedelta(seconds=idempotency_ttl))
                    .values(idempotency_key=None)
                )
                await conn.execute(sa.insert(e), event)
                rows = [
                    _delivery_row(event["id"], event_type, sub.id, sub.enabled, now, "scheduled")
                    for sub in await self._matching_subscriptions(conn, event_type)
                ]
                if rows:
                    await conn.execute(sa.insert(d), rows)
                    await self.db.announce(conn)
        except IntegrityError:
            # The same idempotency key, committed by a concurrent request first.
            earlier = await self._idempotent_event(
                publisher, idempotency_key, now, idempotency_ttl, asked)
            if earlier is None:
                raise
            return earlier, False
        if rows:
            self.wakeup.notify()
        return event | {"deliveries": len(rows)}, True

    async def _insert_events(self, items: list[_NewEvent]) -> list[int | Exception]:
        """One transaction for a group of new events (``GroupCommit``): the event rows and
        their deliveries; per event its fan-out count, or ``KeyDeleted``."""
        checked = {item.row["publisher"] for item in items if item.check_key}
        results, live = await self.db.run_write(
            functools.partial(self._write_events, items, checked))
        for gone in checked - live:
            self._forget_key(gone)
        if any(isinstance(count, int) and count for count in results):
            self.wakeup.notify()
        return results

    def _write_events(
        self, items: list[_NewEvent], checked: set[str], conn: sa.Connection,
    ) -> tuple[list[int | Exception], set[str]]:
        """``_insert_events`` on a synchronous connection (``Database.run_write``)."""
        k = api_key_table
        event_insert, delivery_insert = self._driver_inserts(conn.dialect)
        live: set[str] = set()
        if checked:
            live = set(conn.execute(
                sa.select(k.c.id).where(k.c.id.in_(checked), k.c.deleted_at.is_(None))
            ).scalars())
        subs = conn.execute(_live_subscriptions()).all()
        results: list[int | Exception] = []
        events: list[tuple[Any, ...]] = []
        deliveries: list[tuple[Any, ...]] = []
        by_type: dict[str, list[Any]] = {}
        for item in items:
            event = item.row
            if item.check_key and event["publisher"] not in live:
                results.append(KeyDeleted(event["publisher"]))
                continue
            chosen = by_type.get(event["type"])
            if chosen is None:
                chosen = by_type[event["type"]] = [
                    sub for sub in subs if event_types.matches_any(sub.event_types, event["type"])]
            events.append(event_insert.params(
                {c: event_insert.bind(c, v) for c, v in event.items()}))
            # One bound time for all of the event's rows.
            at = delivery_insert.bind("created_at", event["created_at"])
            deliveries += [
                _delivery_values(event["id"], event["type"], sub.id, sub.enabled, at, "scheduled")
                for sub in chosen
            ]
            results.append(len(chosen))
        if events:
            event_insert.execute(conn, events)
        if deliveries:
            delivery_insert.execute(conn, deliveries)
            self.db.announce_sync(conn)
        return results, live

    def _driver_inserts(self, dialect: sa.Dialect) -> tuple[_DriverInsert, _DriverInsert]:
        made = self._inserts.get(dialect.name)
        if made is None:
            made = self._inserts[dialect.name] = (
                _DriverInsert(event_table, EVENT_COLUMNS, dialect),
                _DriverInsert(delivery_table, DELIVERY_COLUMNS, dialect))
        return made

    async def _matching_subscriptions(self, conn: Any, event_type: str) -> list[Any]:
        return [sub for sub in (await conn.execute(_live_subscriptions())).all()
                if event_types.matches_any(sub.event_types, event_type)]

    async def _key_is_live(self, key_id: str) -> bool:
        k = api_key_table
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                sa.select(k.c.id).where(k.c.id == key_id, k.c.deleted_at.is_(None)))
        if found is None:
            self._forget_key(key_id)
        return found is not None

    async def _idempotent_event(
        self, publisher: str, key: str, now: datetime, ttl: float, asked: tuple[str, Any],
    ) -> dict[str, Any] | None:
        """The live event stored under ``key``, if any; ``IdempotencyKeyReused`` if it was
        asked for with another (type, data) than ``asked``."""
        e, d = event_table, delivery_table
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(e.c.id, e.c.type, e.c.created_at, e.c.payload).where(
                        e.c.publisher == publisher,
                        e.c.idempotency_key == key,
                        e.c.created_at > now - timedelta(seconds=ttl),
                    )
                )
            ).first()
            if row is None:
                return None
            # Compared with the stored body: no hash column, and rows from before work alike.
            if not same_request(row.payload, *asked):
                raise IdempotencyKeyReused(key)
            count = await conn.scalar(
                sa.select(sa.func.count()).select_from(d).where(d.c.event_id == row.id)
            )
        return {"id": row.id, "type": row.type, "created_at": row.created_at,
                "deliveries": count}

    async def list_events(
        self, publisher: str | None, event_type: str | None, after: datetime | None,
        before: datetime | None, cursor: str | None, limit: int, order: str,
    ) -> Page:
        e = event_table
        stmt = sa.select(e.c.id, e.c.type, e.c.created_at, e.c.payload)
        if publisher is not None:
            stmt = stmt.where(e.c.publisher == publisher)
        if event_type is not None:
            stmt = stmt.where(e.c.type == event_type)
        stmt = stmt.where(*_created_between(e, "evt", after, before, since_inclusive=False))
        return await self._page(stmt, e.c.id, cursor, limit, order)

    async def get_event(self, event_id: str, publisher: str | None) -> dict[str, Any]:
        e = event_table
        stmt = sa.select(e.c.id, e.c.type, e.c.created_at, e.c.payload, e.c.publisher).where(
            e.c.id == event_id
        )
        if publisher is not None:
            stmt = stmt.where(e.c.publisher == publisher)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(event_id)
        return _row(row)

    # ---- deliveries and attempts --------------------------------------------------------

    def _delivery_query(self, owner: str | None) -> sa.Select[Any]:
        d, s = delivery_table, subscription_table
        stmt = sa.select(
            d.c.id, d.c.event_id, d.c.event_type, d.c.subscription_id, d.c.status,
            d.c.attempts, d.c.next_attempt_at, d.c.last_status_code, d.c.last_error,
            d.c.created_at, d.c.updated_at, d.c.lease_until,
        )
        if owner is not None:
            owned = sa.select(s.c.id).where(s.c.owner == owner)
            stmt = stmt.where(d.c.subscription_id.in_(owned))
        return stmt

    async def list_deliveries(
        self, owner: str | None, *, status: str | None = None, subscription_id: str | None = None,
        event_type: str | None = None, event_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
        cursor: str | None = None, limit: int = 50, order: str = "desc",
    ) -> Page:
        d = delivery_table
        stmt = self._delivery_query(owner)
        if status is not None:
            stmt = stmt.where(d.c.status == status)
        if subscription_id is not None:
            stmt = stmt.where(d.c.subscription_id == subscription_id)
        if event_type is not None:
            stmt = stmt.where(d.c.event_type == event_type)
        if event_id is not None:
            stmt = stmt.where(d.c.event_id == event_id)
        stmt = stmt.where(*_created_between(d, "dlv", since, until))
        return await self._page(stmt, d.c.id, cursor, limit, order)

    async def get_delivery(self, delivery_id: str, owner: str | None) -> dict[str, Any]:
        stmt = self._delivery_query(owner).where(delivery_table.c.id == delivery_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(delivery_id)
        return _row(row)

    async def list_attempts(
        self, delivery_id: str, owner: str | None, cursor: str | None, limit: int, order: str
    ) -> Page:
        await self.get_delivery(delivery_id, owner)
        a = attempt_table
        stmt = sa.select(a).where(a.c.delivery_id == delivery_id)
        return await self._page(stmt, a.c.id, cursor, limit, order)

    async def retry_now(self, delivery_id: str, owner: str | None) -> dict[str, Any]:
        """Schedule one manual attempt now, whatever the delivery's status.

        It is outside the schedule: unless it succeeds, the delivery goes back to its status
        (``resume_status``) and, if pending, to its next attempt time (``resume_at``), and
        the attempt uses up no retry (``record_attempts``). Asked again before the attempt
        starts, nothing changes: one attempt is queued, from the state before the first ask.
        """
        d, s = delivery_table, subscription_table
        now = utcnow()
        async with self.writer.begin() as conn:
            stmt = self._delivery_query(owner).where(d.c.id == delivery_id)
            row = (await conn.execute(stmt)).first()
            if row is None:
                raise NotFound(delivery_id)
            # As replay does, leave deliveries of deleted subscriptions alone, finished
            # ones too: their URL is no longer anyone's to send to.
            deleted = await conn.scalar(sa.select(s.c.deleted_at).where(
                s.c.id == row.subscription_id))
            if row.status == "cancelled" or deleted is not None:
                raise Conflict("subscription_deleted", "the delivery's subscription was deleted")
            if row.status == "pending" and row.lease_until is not None and row.lease_until > now:
                raise Conflict("attempt_in_progress", "an attempt of this delivery is under way")
            queued = row.status == "pending" and await conn.scalar(
                sa.select(d.c.next_trigger).where(d.c.id == delivery_id)) == "manual"
            if not queued:
                await conn.execute(
                    sa.update(d)
                    .where(d.c.id == delivery_id)
                    .values(
                        status="pending",
                        next_trigger="manual",
                        resume_status=row.status,
                        resume_at=row.next_attempt_at if row.status == "pending" else None,
                        next_attempt_at=now,
                        updated_at=now,
                    )
                )
                await self.db.announce(conn)
            row = (await conn.execute(stmt)).one()
        self.wakeup.notify()
        return _row(row)

    # ---- the worker's side --------------------------------------------------------------

    async def claim_due(
        self, owner: str, limit: int, lease_seconds: float, skip: Sequence[str] = ()
    ) -> list[Job]:
        """Lease up to ``limit`` due deliveries to ``owner`` and return them as jobs, oldest
        due first.

        ``skip``: subscriptions this worker may not start more attempts for just now.
        """
        d, e, s = delivery_table, event_table, subscription_table
        now = utcnow()
        until = now + timedelta(seconds=lease_seconds)
        async with self.writer.begin() as conn:
            stmt = self.db.claim_statement(now, until, owner, limit, skip)
            claimed = (await conn.execute(stmt)).all()
            if not claimed:
                return []
            # Each event and subscription once, however many of the deliveries share it
            # (a fan-out is one event to many; a busy subscription gets many events).
            payloads = dict((await conn.execute(
                sa.select(e.c.id, e.c.payload)
                .where(e.c.id.in_({r.event_id for r in claimed}))
            )).all())
            subs = {r.id: r for r in await conn.execute(
                sa.select(s.c.id, s.c.url, s.c.headers, s.c.secrets,
                          s.c.rate_limit_per_second, s.c.failing_since, s.c.deleted_at)
                .where(s.c.id.in_({r.subscription_id for r in claimed}))
            )}
            # Nothing goes to a deleted subscription: a delivery of one found pending (left
            # so by an older version) is cancelled here, as the deletion meant, and not sent.
            deleted = {sub_id for sub_id, sub in subs.items() if sub.deleted_at is not None}
            if deleted:
                await conn.execute(
                    sa.update(d)
                    .where(d.c.id.in_([r.id for r in claimed if r.subscription_id in deleted]))
                    .values(status="cancelled", next_attempt_at=None, lease_until=None,
                            lease_owner=None, updated_at=now))
                subs = {sub_id: sub for sub_id, sub in subs.items() if sub_id not in deleted}
        keys = {sub_id: valid_keys(self._opened_secrets(sub.secrets), now)
                for sub_id, sub in subs.items()}
        return [
            Job(
                delivery_id=r.id,
                event_id=r.event_id,
                subscription_id=r.subscription_id,
                number=r.attempts + 1,
                round_number=r.attempts - r.retry_base + 1,
                trigger=r.next_trigger,
                resume_status=r.resume_status,
                url=sub.url,
                headers=sub.headers,
                keys=keys[r.subscription_id],
                payload=payloads[r.event_id],
                rate_limit=sub.rate_limit_per_second,
                failing_since=sub.failing_since,
                resume_at=r.resume_at,
            )
            for r in sorted(claimed, key=lambda r: r.next_attempt_at)
            if (sub := subs.get(r.subscription_id)) is not None and r.event_id in payloads
        ]

    async def record_attempts(
        self, owner: str, records: Sequence[AttemptRecord], disable_after: float | None = None
    ) -> None:
        """Store attempts and the deliveries' new states, and release their leases.

        Also keeps each subscription's failure streak (``failing_since``): one failing with
        no success for ``disable_after`` seconds is disabled, and a 410 disables at once.
        Pending deliveries of disabled subscriptions are held.
        """
        if not records:
            return
        a, d, s = attempt_table, delivery_table, subscription_table
        now = utcnow()
        async with self.writer.begin() as conn:
            # Idempotent: a batch is written again when its commit's answer was lost.
            await conn.execute(
                self.db.insert_once(a),
                [
                    {
                        "id": r.id,
                        "delivery_id": r.job.delivery_id,
                        "number": r.job.number,
                        "trigger": r.job.trigger,
                        "started_at": r.started_at,
                        "duration_ms": r.duration_ms,
                        "status_code": r.status_code,
                        "response_body": r.response_body,
                        "error": r.error,
                        "outcome": r.outcome,
                    }
                    for r in records
                ],
            )
            # Only the lease holder moves the delivery on; an attempt made after the lease
            # ran out is still recorded above, and the new holder decides. A delivery
            # cancelled meanwhile (its subscription deleted) stays cancelled.
            cancelled = d.c.status == "cancelled"
            await conn.execute(
                sa.update(d)
                .where(d.c.id == sa.bindparam("b_id"), d.c.lease_owner == owner)
                .values(
                    status=sa.case((cancelled, d.c.status), else_=sa.bindparam("b_status")),
                    attempts=d.c.attempts + 1,
                    # A manual attempt is outside the schedule: it uses up no retry.
                    retry_base=d.c.retry_base + sa.bindparam("b_outside"),
                    next_attempt_at=sa.case(
                        (cancelled, None),
                        else_=sa.bindparam("b_next", type_=d.c.next_attempt_at.type)),
                    lease_until=None,
                    lease_owner=None,
                    last_status_code=sa.bindparam("b_code"),
                    last_error=sa.bindparam("b_error"),
                    next_trigger=sa.bindparam("b_trigger"),
                    resume_status=None,
                    resume_at=None,
                    updated_at=now,
                ),
                [
                    {
                        "b_id": r.job.delivery_id,
                        # A replayed delivery's retries are part of the replay.
                        "b_trigger": "replay" if r.job.trigger == "replay"
                        and r.status == "pending" else "scheduled",
                        "b_status": r.status,
                        "b_outside": 1 if r.job.trigger == "manual" else 0,
                        "b_next": r.next_attempt_at,
                        "b_code": r.status_code,
                        "b_error": r.error,
                    }
                    for r in records
                ],
            )
            ok = {r.job.subscription_id for r in records if r.outcome == "succeeded"}
            failing = {r.job.subscription_id for r in records if r.outcome == "failed"} - ok
            gone = {r.job.subscription_id for r in records if r.gone}
            # The streak as the claim saw it spares a statement per batch in the common
            # cases (healthy stays healthy, failing stays failing); a streak another
            # worker changed since is settled by this subscription's next batch.
            recovered = {r.job.subscription_id for r in records
                         if r.job.failing_since is not None} & ok
            if recovered:
                await conn.execute(
                    sa.update(s).where(s.c.id.in_(recovered), s.c.failing_since.is_not(None))
                    .values(failing_since=None))
            newly_failing = {r.job.subscription_id for r in records
                             if r.job.failing_since is None} & failing
            if newly_failing:
                await conn.execute(
                    sa.update(s).where(s.c.id.in_(newly_failing), s.c.failing_since.is_(None))
                    .values(failing_since=now))
            disabled = set(gone)
            if gone:
                await conn.execute(
                    sa.update(s)
                    .where(s.c.id.in_(gone), s.c.enabled.is_(True))
                    .values(enabled=False, disabled_reason="gone", updated_at=now)
                )
            stale = now - timedelta(seconds=disable_after) if disable_after is not None else None
            long_failing = {r.job.subscription_id for r in records
                            if stale is not None and r.job.failing_since is not None
                            and r.job.failing_since < stale} & failing
            if long_failing:
                found = await conn.execute(
                    sa.update(s)
                    .where(s.c.id.in_(long_failing), s.c.enabled.is_(True),
                           s.c.failing_since < stale)
                    .values(enabled=False, disabled_reason="failing", updated_at=now)
                    .returning(s.c.id)
                )
                disabled |= set(found.scalars())
            # Deliveries going back to pending must wait as held if their subscription was
            # disabled meanwhile (by an operator or another worker); finished ones need not.
            retried = {r.job.subscription_id for r in records if r.status == "pending"}
            if retried:
                off = await conn.execute(
                    sa.select(s.c.id).where(s.c.id.in_(retried), s.c.enabled.is_(False)))
                disabled |= set(off.scalars())
            if disabled:
                await _hold_pending(conn, sorted(disabled), now)

    async def take_tokens(self, sub_id: str, want: int, limit: int, second: int) -> int:
        """Start up to ``want`` attempts in the one-second window ``second``, shared by every
        worker; returns how many may start (the rest wait for the next window)."""
        s = subscription_table
        async with self.writer.begin() as conn:
            row = (await conn.execute(
                sa.select(s.c.rate_window, s.c.rate_count).where(s.c.id == sub_id)
                .with_for_update()
            )).first()
            if row is None:
                return want
            used = row.rate_count if row.rate_window == second else 0
            granted = max(0, min(want, limit - used))
            if granted:
                await conn.execute(
                    sa.update(s).where(s.c.id == sub_id)
                    .values(rate_window=second, rate_count=used + granted))
        return granted

    async def defer(self, owner: str, ids: Sequence[str], until: datetime) -> None:
        """Put claimed deliveries back, due at ``until``: no attempt, no retry used."""
        await self._own_leases(owner, ids, next_attempt_at=until, lease_until=None,
                               lease_owner=None)

    async def extend_leases(self, owner: str, ids: Sequence[str], lease_seconds: float) -> int:
        """Keep this worker's leases on ``ids``: it is alive, its attempts merely slow."""
        until = utcnow() + timedelta(seconds=lease_seconds)
        return await self._own_leases(owner, ids, lease_until=until)

    async def release_leases(self, owner: str, ids: Sequence[str]) -> None:
        """Give back leases on ``ids``: they are due again at once."""
        await self._own_leases(owner, ids, lease_until=None, lease_owner=None)

    async def _own_leases(self, owner: str, ids: Sequence[str], **values: Any) -> int:
        """Change deliveries in ``ids`` that ``owner`` still holds (a primary-key lookup)."""
        if not ids:
            return 0
        d = delivery_table
        async with self.writer.begin() as conn:
            result = await conn.execute(
                sa.update(d).where(d.c.id.in_(ids), d.c.lease_owner == owner).values(**values))
        return result.rowcount

    async def next_due_at(self, skip: Sequence[str] = ()) -> datetime | None:
        """When the next unleased pending delivery comes due (an index range, LIMIT 1),
        leaving out the subscriptions in ``skip``."""
        d = delivery_table
        stmt = (
            sa.select(d.c.next_attempt_at)
            .where(*unleased_pending(utcnow(), skip))
            .order_by(d.c.next_attempt_at)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            return await conn.scalar(stmt)

    async def queue_stats(self) -> QueueStats:
        """What is waiting and what is unwell, for /metrics and the dashboard: each count
        an index range (status first), so cheap however many deliveries have finished."""
        d, s = delivery_table, subscription_table
        now = utcnow()
        by_status = (sa.select(d.c.status, sa.func.count())
                     .where(d.c.status.in_(("pending", "held", "failed")))
                     .group_by(d.c.status))
        oldest_due = (sa.select(sa.func.min(d.c.next_attempt_at))
                      .where(*unleased_pending(now), d.c.next_attempt_at <= now))
        live = s.c.deleted_at.is_(None)
        unwell = sa.select(
            sa.func.count().filter(s.c.enabled.is_(False)),
            sa.func.count().filter(s.c.enabled.is_(True), s.c.failing_since.is_not(None)),
        ).where(live, sa.or_(s.c.enabled.is_(False), s.c.failing_since.is_not(None)))
        async with self.engine.connect() as conn:
            counts = dict((await conn.execute(by_status)).all())
            due = await conn.scalar(oldest_due)
            disabled, failing = (await conn.execute(unwell)).one()
        return QueueStats(
            pending=counts.get("pending", 0), held=counts.get("held", 0),
            failed=counts.get("failed", 0),
            oldest_due_seconds=max(0.0, (now - due).total_seconds()) if due else 0.0,
            disabled_subscriptions=disabled or 0, failing_subscriptions=failing or 0,
        )

    # ---- the dashboard ------------------------------------------------------------------

    async def admin_key_hash(self, key_id: str) -> str | None:
        """The hash of the live admin key ``key_id``: what signs its dashboard sessions, so
        that deleting the key ends them at once."""
        k = api_key_table
        async with self.engine.connect() as conn:
            return await conn.scalar(sa.select(k.c.key_hash).where(
                k.c.id == key_id, k.c.role == "admin", k.c.deleted_at.is_(None)))

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
                .where(a.c.id >= ids.time_bound("att", _slack(since, -1)),
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
        stmt = (sa.select(s.c.id, s.c.description, s.c.url, s.c.enabled, s.c.disabled_reason,
                          s.c.failing_since, s.c.updated_at)
                .where(s.c.deleted_at.is_(None), sa.or_(unwell, s.c.id.in_(list(also)))
                       if also else unwell)
                .order_by(s.c.enabled, s.c.failing_since, s.c.id).limit(limit + len(also)))
        async with self.engine.connect() as conn:
            return [_row(r) for r in await conn.execute(stmt)]

    async def attempt_outcomes(
        self, since: datetime, sub_ids: Sequence[str] | None = None
    ) -> dict[str, dict[str, int]]:
        """{subscription id: {outcome: attempts}} of attempts started since ``since``: one
        grouped query over a range of the time-ordered attempt ids."""
        a, d = attempt_table, delivery_table
        stmt = (sa.select(d.c.subscription_id, a.c.outcome, sa.func.count())
                .select_from(a.join(d, d.c.id == a.c.delivery_id))
                .where(a.c.id >= ids.time_bound("att", _slack(since, -1)),
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
                  .where(d.c.subscription_id.in_(sub_ids), d.c.status == "succeeded")
                  .group_by(d.c.subscription_id))
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(d.c.subscription_id, d.c.updated_at).where(d.c.id.in_(newest)))
            return {r.subscription_id: r.updated_at for r in rows}

    # ---- operators: replay, recover, prune ----------------------------------------------

    def _replay_query(self, f: DeliveryFilter) -> sa.Select[Any]:
        d, s = delivery_table, subscription_table
        stmt = (
            sa.select(d.c.id, s.c.enabled)
            .join(s, s.c.id == d.c.subscription_id)
            .where(d.c.status == f.status, s.c.deleted_at.is_(None))
        )
        if f.subscription_id is not None:
            stmt = stmt.where(d.c.subscription_id == f.subscription_id)
        if f.event_type is not None:
            stmt = stmt.where(d.c.event_type == f.event_type)
        return stmt.where(*_created_between(d, "dlv", f.since, f.until))

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
        if f.status not in ("failed", "succeeded"):
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
                            .values(status="pending" if enabled else "held",
                                    next_attempt_at=now if enabled else None,
                                    retry_base=d.c.attempts, next_trigger="replay",
                                    resume_status=None, resume_at=None, lease_until=None,
                                    lease_owner=None,
                                    updated_at=now))).rowcount
                await self.db.announce(conn)
            self.wakeup.notify()
            # Counted as changed: a row another request moved on meanwhile is not replayed.
            done += changed
            after = found[-1].id
            if progress is not None:
                progress(len(found))
        return done

    async def replay_event(self, event_id: str, subscription_ids: Sequence[str] | None) -> int:
        """New deliveries of an event: to the given subscriptions, or to every one that
        matches it now; their attempts carry trigger ``replay``."""
        e, s, d = event_table, subscription_table, delivery_table
        now = utcnow()
        async with self.writer.begin() as conn:
            # Locked, so that a concurrent prune cannot remove it under the new deliveries.
            event = (await conn.execute(
                sa.select(e.c.id, e.c.type).where(e.c.id == event_id).with_for_update())).first()
            if event is None:
                raise NotFound(event_id)
            stmt = sa.select(s.c.id, s.c.event_types, s.c.enabled).where(s.c.deleted_at.is_(None))
            if subscription_ids is not None:
                stmt = stmt.where(s.c.id.in_(subscription_ids))
            subs = (await conn.execute(stmt)).all()
            if subscription_ids is not None:
                missing = set(subscription_ids) - {sub.id for sub in subs}
                if missing:
                    raise NotFound(sorted(missing)[0])
            else:
                subs = [sub for sub in subs
                        if event_types.matches_any(sub.event_types, event.type)]
            rows = [_delivery_row(event.id, event.type, sub.id, sub.enabled, now, "replay")
                    for sub in subs]
            if rows:
                await conn.execute(sa.insert(d), rows)
                await self.db.announce(conn)
        self.wakeup.notify()
        return len(rows)

    async def prune(
        self, older_than: datetime, include_failed: bool = False, batch: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, int]:
        """Delete finished deliveries created before ``older_than`` with their attempts, then
        events with no delivery left; batch by batch. ``failed`` ones only when asked."""
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
        return {"deliveries": deliveries or 0, "attempts": attempts or 0, "events": events or 0}

    # ---- lists --------------------------------------------------------------------------

    async def _page(
        self, stmt: sa.Select[Any], id_col: sa.ColumnElement[str], cursor: str | None,
        limit: int, order: str,
    ) -> Page:
        if cursor is not None:
            stmt = stmt.where(id_col > cursor if order == "asc" else id_col < cursor)
        stmt = stmt.order_by(id_col.asc() if order == "asc" else id_col.desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = [_row(r) for r in await conn.execute(stmt)]
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, rows[-1]["id"] if more and rows else None)
