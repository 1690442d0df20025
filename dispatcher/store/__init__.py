"""All reads and writes of the database go through the store, one module per role:

- ``rows``: the errors, typed rows and shared pure helpers (event bodies, time windows);
- ``base``: what the roles share (the database, the secret box, the live-key cache, paging);
- ``tenants``: the publisher's customers (put, read, list, delete with what is theirs);
  ``portal_links`` the links into a tenant's portal and the sessions they open;
- ``keys``: API keys; ``subscriptions``: subscriptions and their signing secrets;
- ``events``: ingest (group commit, or one transaction with an idempotency key), the one
  ``fan_out`` of an event to deliveries, reads, event replay; ``batching`` the group commit
  and the driver-level insert it uses;
- ``catalog``: the event-type catalog and the process's compiled copy of it;
- ``deliveries``: lists, retry now, bulk replay, prune;
- ``queue``: what the worker uses (claim, record, leases, rate tokens, wait for work),
  named by the ``WorkQueue`` protocol; ``health``: recording's failure streaks and the
  holding of disabled subscriptions' deliveries;
- ``stats``: counts for /metrics and the dashboard; ``tenant_stats`` the dashboard's
  counts by tenant.

``Store`` is each role's class together (one class per role, each a ``StoreBase`` sharing
one database and key cache), so callers keep one object and ``store.create_subscription``
style calls; a caller that needs one role only (the worker) names its protocol instead.
"""

from __future__ import annotations

from .base import StoreBase
from .batching import DriverInsert, GroupCommit
from .catalog import EventTypes
from .deliveries import Deliveries
from .events import EVENT_COLUMNS, Events
from .fan_out import DELIVERY_COLUMNS, _delivery_row, fan_out
from .keys import Keys
from .portal_links import PortalLink, PortalLinks
from .queue import Queue, WorkQueue
from .rows import (
    OPEN_STATUSES,
    AttemptRecord,
    Conflict,
    DeliveryFilter,
    EventRow,
    IdempotencyKeyReused,
    Invalid,
    Job,
    KeyDeleted,
    KeyRow,
    NotFound,
    Page,
    QueueStats,
    Scope,
    TenantNotFound,
    canonical_json,
    encode_payload,
    hash_key,
    same_request,
    valid_keys,
)
from .stats import Stats
from .subscriptions import Subscriptions
from .tenant_stats import TenantCounts, TenantStats
from .tenants import Tenants


class Store(Tenants, PortalLinks, Keys, Subscriptions, Events, EventTypes, Deliveries, Queue,
            Stats, TenantStats):
    """The whole store: every role's methods on one object."""


__all__ = [
    "DELIVERY_COLUMNS", "EVENT_COLUMNS", "OPEN_STATUSES", "AttemptRecord", "Conflict",
    "Deliveries", "DeliveryFilter", "DriverInsert", "EventRow", "EventTypes", "Events",
    "GroupCommit",
    "IdempotencyKeyReused", "Invalid", "Job", "KeyDeleted", "KeyRow", "Keys", "NotFound", "Page",
    "PortalLink", "PortalLinks",
    "Queue", "QueueStats", "Scope", "Stats", "Store", "StoreBase", "Subscriptions",
    "TenantCounts", "TenantNotFound", "TenantStats", "Tenants", "WorkQueue", "_delivery_row",
    "canonical_json", "encode_payload", "fan_out", "hash_key", "same_request",
    "valid_keys",
]
