"""The words of the webhook domain that are stored and shown: one member for each, used
everywhere (SQL text aside). ``StrEnum`` members are ``str``, so they compare, serialise and
bind as the same text as before."""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retries exhausted, or an answer that is not retried
    HELD = "held"  # its subscription is disabled; sent once it is enabled again
    CANCELLED = "cancelled"  # its subscription was deleted


class Trigger(StrEnum):
    """What started an attempt."""

    SCHEDULED = "scheduled"
    MANUAL = "manual"  # retry now
    REPLAY = "replay"


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Role(StrEnum):
    ADMIN = "admin"
    PUBLISHER = "publisher"
    SUBSCRIBER = "subscriber"


class DisabledReason(StrEnum):
    MANUAL = "manual"
    GONE = "gone"  # the receiver answered 410
    FAILING = "failing"  # no success for DISPATCHER_DISABLE_AFTER_SECONDS


class SignatureScheme(StrEnum):
    """How a subscription's requests are signed (Standard Webhooks)."""

    V1 = "v1"  # HMAC-SHA256 with a shared secret (whsec_)
    V1A = "v1a"  # Ed25519: the service keeps the private key (whsk_), receivers the public (whpk_)
