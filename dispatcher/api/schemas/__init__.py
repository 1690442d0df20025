"""Request and response bodies, as docs/api.md describes them: one module per resource,
and what they share (``common``)."""

from .common import (
    EARLIEST,
    EXAMPLE_TYPE,
    ID_EXAMPLES,
    LATEST,
    NO_NUL,
    ErrorBody,
    ErrorOut,
    HealthOut,
    Listing,
    ReadyOut,
    utc_filter_time,
)
from .deliveries import AttemptOut, DeliveryOut, RecoverIn, Replayed, ReplayIn, Status
from .event_types import EventTypeIn, EventTypeOut
from .events import EventAccepted, EventIn, EventOut, EventReplayed, EventReplayIn
from .keys import KeyCreated, KeyIn, KeyOut
from .subscriptions import (
    FilterTestIn,
    FilterTestOut,
    RotateIn,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionPatch,
    TestIn,
    TestOut,
)
from .tenants import PortalLinkIn, PortalLinkOut, TenantIn, TenantOut

__all__ = [
    "EARLIEST", "EXAMPLE_TYPE", "ID_EXAMPLES", "LATEST", "NO_NUL", "AttemptOut", "DeliveryOut",
    "ErrorBody", "ErrorOut", "EventAccepted", "EventIn", "EventOut", "EventReplayIn",
    "EventReplayed", "EventTypeIn", "EventTypeOut", "FilterTestIn", "FilterTestOut",
    "HealthOut", "KeyCreated", "KeyIn",
    "KeyOut", "Listing", "PortalLinkIn",
    "PortalLinkOut", "ReadyOut", "RecoverIn", "ReplayIn", "Replayed", "RotateIn", "Status",
    "SubscriptionIn", "SubscriptionOut",
    "SubscriptionPatch", "TenantIn", "TenantOut", "TestIn", "TestOut", "utc_filter_time",
]
