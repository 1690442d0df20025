"""Operational events: what dispatcher tells an operator about its own state, as events of
the reserved ``dispatcher.`` types (docs/api.md, "Operational events").

``after_recording`` decides which a batch of recorded attempts produces, from what the
store confirmed it changed; ``store/operational.py`` writes them in the same transaction.
An attempt at delivering an operational event produces none, so an operator's failing
endpoint cannot feed itself events about itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from .event_types import is_reserved
from .health import FAILING_STREAK
from .vocabulary import DisabledReason

# A streak must have lasted this long (the dashboard's "failing") for its end to be news.
RECOVERED_AFTER = FAILING_STREAK


class OperationalType(StrEnum):
    SUBSCRIPTION_DISABLED = "dispatcher.subscription.disabled"
    SUBSCRIPTION_RECOVERED = "dispatcher.subscription.recovered"
    DELIVERY_FAILED = "dispatcher.delivery.failed"


class Notice(NamedTuple):
    """One operational event to publish: its type and its ``data``."""

    type: OperationalType
    data: dict[str, Any]


class Finished(NamedTuple):
    """One recorded attempt, as ``after_recording`` sees it."""

    delivery_id: str
    event_id: str
    event_type: str
    subscription_id: str
    tenant_id: str | None
    attempts: int  # the delivery's attempts so far, this one included
    status_code: int | None
    error: str | None
    failing_since: datetime | None  # its subscription's streak of failures, when claimed


def disabled(subscription_id: str, tenant_id: str | None, reason: DisabledReason) -> Notice:
    return Notice(OperationalType.SUBSCRIPTION_DISABLED,
                  {"subscription_id": subscription_id, "tenant_id": tenant_id,
                   "reason": reason.value})


def recovered(subscription_id: str, tenant_id: str | None) -> Notice:
    return Notice(OperationalType.SUBSCRIPTION_RECOVERED,
                  {"subscription_id": subscription_id, "tenant_id": tenant_id})


def delivery_failed(f: Finished) -> Notice:
    return Notice(OperationalType.DELIVERY_FAILED, {
        "delivery_id": f.delivery_id, "event_id": f.event_id, "event_type": f.event_type,
        "subscription_id": f.subscription_id, "tenant_id": f.tenant_id,
        "attempts": f.attempts, "last_status_code": f.status_code, "last_error": f.error})


def after_recording(finished: Sequence[Finished], failed: Iterable[str],
                    disabled_now: Mapping[str, DisabledReason],
                    ended_now: Iterable[str], now: datetime) -> list[Notice]:
    """The notices of one recording: a ``delivery.failed`` for each delivery id in
    ``failed`` (moved to failed for good by it), a ``subscription.disabled`` for each
    subscription ``disabled_now`` names, a ``subscription.recovered`` for each in
    ``ended_now`` (its streak ended by it) whose streak, as its attempts were claimed, had
    lasted ``RECOVERED_AFTER``; none that an attempt at an operational event caused."""
    by_delivery = {f.delivery_id: f for f in finished}
    # A subscription's change is news if an attempt at a publisher's event took part in it.
    loud = {f.subscription_id: f for f in finished if not is_reserved(f.event_type)}
    notices = [delivery_failed(by_delivery[d]) for d in sorted(set(failed))
               if d in by_delivery and not is_reserved(by_delivery[d].event_type)]
    notices += [disabled(sub, loud[sub].tenant_id, reason)
                for sub, reason in sorted(disabled_now.items()) if sub in loud]
    long_ago = now - RECOVERED_AFTER
    notices += [recovered(sub, loud[sub].tenant_id) for sub in sorted(set(ended_now))
                if sub in loud and (since := loud[sub].failing_since) is not None
                and since <= long_ago]
    return notices
