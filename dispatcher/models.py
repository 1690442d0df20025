"""The tables. The schema itself is created only by the Alembic migrations in migrations/."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from .clock import as_utc
from .vocabulary import DeliveryStatus, Trigger


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on engines that keep a zone and ones that do not."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = as_utc(value)
        # SQLite stores text: keep it zone-less so that string order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        return as_utc(value)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


TENANT_ID_LENGTH = 64


def _tenant_id() -> Any:
    return Field(default=None, max_length=TENANT_ID_LENGTH)


class Tenant(SQLModel, table=True):
    """A customer of the publisher; its id is the publisher's own (``tenants.py``)."""

    __tablename__ = "tenant"
    __table_args__ = (sa.Index("ix_tenant_created_id", "created_at", "id"),)

    id: str = Field(primary_key=True, max_length=TENANT_ID_LENGTH)
    name: str | None = Field(default=None, max_length=200)
    # "metadata" is SQLModel's own attribute: the column keeps the contract's name.
    meta: dict[str, Any] = Field(sa_column=sa.Column("metadata", sa.JSON(), nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    # Kept, not removed, so a list's cursor on it still has its place.
    deleted_at: datetime | None = _ts(nullable=True)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    __table_args__ = (sa.Index("ix_api_key_tenant_id", "tenant_id"),)

    id: str = Field(primary_key=True, max_length=40)
    role: str = Field(max_length=16)
    name: str = Field(max_length=200)
    key_hash: str = Field(max_length=64, unique=True)
    tenant_id: str | None = _tenant_id()  # a subscriber key scoped to this tenant
    created_at: datetime = _ts()
    deleted_at: datetime | None = _ts(nullable=True)


class Subscription(SQLModel, table=True):
    __tablename__ = "subscription"
    __table_args__ = (sa.Index("ix_subscription_owner_id", "owner", "id"),
                      sa.Index("ix_subscription_tenant_id", "tenant_id", "id"))

    id: str = Field(primary_key=True, max_length=40)
    owner: str = Field(max_length=40)  # id of the API key that created it
    tenant_id: str | None = _tenant_id()  # fixed at creation
    url: str = Field(max_length=2048)
    event_types: list[str] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    headers: dict[str, str] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    description: str = Field(default="", max_length=1000)
    # [{"secret": "whsec_…", "expires_at": null | RFC 3339}], newest first
    secrets: list[dict[str, Any]] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=32)
    rate_limit_per_second: int | None = None
    # A payload filter (dispatcher/filters.py): only events it matches get a delivery.
    # none_as_null: "no filter" is SQL NULL, not the JSON text null.
    filter: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(
        sa.JSON(none_as_null=True), nullable=True))
    # Delays in seconds replacing the global retry schedule for it (null: the global one).
    retry_schedule: list[float] | None = Field(default=None, sa_column=sa.Column(
        sa.JSON(none_as_null=True), nullable=True))
    timeout_seconds: int | None = None  # one attempt's deadline (null: the global one)
    # v1 (HMAC, whsec_ secrets) or v1a (Ed25519, whsk_ private keys): a SignatureScheme.
    signature_scheme: str = Field(default="v1", max_length=8,
                                  sa_column_kwargs={"server_default": "v1"})
    # One delivery at a time, in event order (store/ordering.py).
    ordered: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # The last sequence number its deliveries were given (ordered ones only).
    next_sequence: int = Field(default=0, sa_column=sa.Column(
        sa.BigInteger(), nullable=False, server_default="0"))
    # The rate limit's current one-second window (unix seconds) and attempts started in it.
    rate_window: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    rate_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    failing_since: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    deleted_at: datetime | None = _ts(nullable=True)


class Event(SQLModel, table=True):
    __tablename__ = "event"
    __table_args__ = (
        sa.UniqueConstraint("publisher", "idempotency_key", name="uq_event_idempotency"),
        sa.Index("ix_event_type_id", "type", "id"),
        sa.Index("ix_event_publisher_id", "publisher", "id"),
        sa.Index("ix_event_tenant_id", "tenant_id", "id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    type: str = Field(max_length=128)
    # The exact body bytes every subscriber receives: {"type","timestamp","data"}.
    payload: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    publisher: str = Field(max_length=40)
    idempotency_key: str | None = Field(default=None, max_length=255)
    tenant_id: str | None = _tenant_id()  # published for this tenant only
    # Published to every tenant's subscriptions and to those of none (tenant_id is null).
    broadcast: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # The W3C traceparent of the request that accepted it, while tracing is on (tracing.py).
    trace_context: str | None = Field(default=None, max_length=55)
    created_at: datetime = _ts()


class Delivery(SQLModel, table=True):
    __tablename__ = "delivery"
    __table_args__ = (
        # The two lanes of due deliveries (database.due_lane): first attempts, and retries.
        # status leads although constant in each: planners then prefer them to (status, id).
        *(sa.Index(name, "status", "next_attempt_at", sqlite_where=sa.text(where),
                   postgresql_where=sa.text(where))
          for name, where in (
              ("ix_delivery_due_first", f"status = '{DeliveryStatus.PENDING}' AND attempts = 0"),
              ("ix_delivery_due_retry", f"status = '{DeliveryStatus.PENDING}' AND attempts > 0"))),
        # An ordered subscription's pending deliveries (store/ordering.py): the due head,
        # and those waiting behind it, in sequence order.
        *(sa.Index(name, "subscription_id", *columns, sqlite_where=sa.text(where),
                   postgresql_where=sa.text(where))
          for name, columns, where in (
              ("ix_delivery_ordered_due", (),
               f"status = '{DeliveryStatus.PENDING}' AND sequence IS NOT NULL "
               "AND next_attempt_at IS NOT NULL"),
              ("ix_delivery_ordered_waiting", ("sequence",),
               f"status = '{DeliveryStatus.PENDING}' AND sequence IS NOT NULL "
               "AND next_attempt_at IS NULL"))),
        sa.Index("ix_delivery_status_id", "status", "id"),
        sa.Index("ix_delivery_subscription_id", "subscription_id", "id"),
        sa.Index("ix_delivery_event_id", "event_id", "id"),
        sa.Index("ix_delivery_event_type_id", "event_type", "id"),
        sa.Index("ix_delivery_tenant_id", "tenant_id", "id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    event_id: str = Field(max_length=40)
    event_type: str = Field(max_length=128)
    subscription_id: str = Field(max_length=40)
    tenant_id: str | None = _tenant_id()  # its subscription's, copied: a tenant's lists are ranges
    status: str = Field(max_length=16)  # a DeliveryStatus
    attempts: int = 0
    retry_base: int = 0  # attempts made before the current retry round (replays reset it)
    next_trigger: str = Field(default=Trigger.SCHEDULED, max_length=16)
    resume_status: str | None = Field(default=None, max_length=16)  # after a manual attempt
    # A pending delivery's next_attempt_at before a manual attempt, kept for after it.
    resume_at: datetime | None = _ts(nullable=True)
    next_attempt_at: datetime | None = _ts(nullable=True)
    lease_until: datetime | None = _ts(nullable=True)
    lease_owner: str | None = Field(default=None, max_length=64)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=1000)
    # Its place among an ordered subscription's deliveries (dispatcher-sequence); else null.
    sequence: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger()))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Attempt(SQLModel, table=True):
    __tablename__ = "attempt"
    __table_args__ = (sa.Index("ix_attempt_delivery_number", "delivery_id", "number"),)

    id: str = Field(primary_key=True, max_length=40)
    delivery_id: str = Field(max_length=40)
    number: int
    trigger: str = Field(max_length=16)
    started_at: datetime = _ts()
    duration_ms: int
    status_code: int | None = None
    response_body: str | None = None
    error: str | None = Field(default=None, max_length=1000)
    outcome: str = Field(max_length=16)


class PortalLink(SQLModel, table=True):
    """A link into a tenant's portal (``store/portal_links.py``): its secret is kept only as
    a hash; revoking it, or deleting the tenant, ends its sessions at once."""

    __tablename__ = "portal_link"
    __table_args__ = (sa.Index("ix_portal_link_tenant_id", "tenant_id"),)

    id: str = Field(primary_key=True, max_length=40)
    tenant_id: str = Field(max_length=TENANT_ID_LENGTH)
    token_hash: str = Field(max_length=64, unique=True)
    read_only: bool = False
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)


class EventType(SQLModel, table=True):
    """An entry of the event-type catalog (``store/catalog.py``): what a type means, and the
    JSON Schema its events' ``data`` must match."""

    __tablename__ = "event_type"
    __table_args__ = (sa.Index("ix_event_type_created_type", "created_at", "type"),)

    type: str = Field(primary_key=True, max_length=128)
    description: str = Field(default="", max_length=2000)
    # "schema" is pydantic's own attribute name: the column keeps the contract's name.
    data_schema: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(
        "schema", sa.JSON(none_as_null=True), nullable=True))
    deprecated: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    example: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(
        sa.JSON(none_as_null=True), nullable=True))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    # Kept, not removed, so a list's cursor on it still has its place.
    deleted_at: datetime | None = _ts(nullable=True)


class CatalogVersion(SQLModel, table=True):
    """One row: a number every change of the catalog raises, so that each process knows
    when its compiled schemas are out of date (``catalog.py``)."""

    __tablename__ = "catalog_version"

    id: int = Field(primary_key=True)
    version: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))


# The Core tables the store queries (the classes above only declare them).
tenant_table = SQLModel.metadata.tables[Tenant.__tablename__]
api_key_table = SQLModel.metadata.tables[ApiKey.__tablename__]
subscription_table = SQLModel.metadata.tables[Subscription.__tablename__]
event_table = SQLModel.metadata.tables[Event.__tablename__]
delivery_table = SQLModel.metadata.tables[Delivery.__tablename__]
attempt_table = SQLModel.metadata.tables[Attempt.__tablename__]
portal_link_table = SQLModel.metadata.tables[PortalLink.__tablename__]
event_type_table = SQLModel.metadata.tables[EventType.__tablename__]
catalog_version_table = SQLModel.metadata.tables[CatalogVersion.__tablename__]
