"""The bodies of deliveries and attempts, and of replaying and recovering them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ...event_types import TYPE_MAX_LENGTH
from ...vocabulary import AttemptOutcome, DeliveryStatus, Trigger
from .common import (
    ATTEMPT_ERROR_TEXT,
    DURATION_TEXT,
    EXAMPLE_TIME,
    EXAMPLE_TYPE,
    ID_EXAMPLES,
    OUTCOME_TEXT,
    RESPONSE_BODY_TEXT,
    SINCE_TEXT,
    STATUS_CODE_TEXT,
    UNTIL_TEXT,
    Strict,
    TenantId,
    Text,
    check_tenant_id,
    check_text,
    utc_filter_time,
)

# Literals of the members, not the enum types: /openapi.json lists the words inline, as it
# did, with no $ref component for each enum.
Status = Literal[DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED,
                 DeliveryStatus.HELD, DeliveryStatus.CANCELLED]


class DeliveryOut(BaseModel):
    id: str = Field(description="the delivery's id", examples=[ID_EXAMPLES["dlv"]])
    event_id: str = Field(description="the event it delivers", examples=[ID_EXAMPLES["evt"]])
    event_type: str = Field(description="that event's type", examples=[EXAMPLE_TYPE])
    subscription_id: str = Field(description="the subscription it goes to",
                                 examples=[ID_EXAMPLES["sub"]])
    tenant_id: str | None = Field(description="its subscription's tenant; null: none",
                                  examples=["acme-corp"])
    status: Status = Field(
        description="pending: an attempt is due; succeeded: a 2xx arrived; failed: retries "
                    "are used up, or the answer cannot succeed; held: its subscription is "
                    "disabled; cancelled: its subscription was deleted")
    attempts: int = Field(description="how many attempts were made", examples=[1])
    next_attempt_at: datetime | None = Field(description="when the next attempt is due "
                                                         "(UTC); null if none is",
                                             examples=[None])
    last_status_code: int | None = Field(description="the last attempt's HTTP status; null "
                                                     "before any, or without an answer",
                                         examples=[200])
    last_error: str | None = Field(description="the last attempt's error; null if none",
                                   examples=[None])
    created_at: datetime = Field(description="when it was made (UTC)", examples=[EXAMPLE_TIME])
    updated_at: datetime = Field(description="when it last changed (UTC)",
                                 examples=[EXAMPLE_TIME])


class AttemptOut(BaseModel):
    id: str = Field(description="the attempt's id", examples=[ID_EXAMPLES["att"]])
    delivery_id: str = Field(description="the delivery it belongs to",
                             examples=[ID_EXAMPLES["dlv"]])
    number: int = Field(description="1 for the delivery's first attempt, then 2, 3, …",
                        examples=[1])
    trigger: Literal[Trigger.SCHEDULED, Trigger.MANUAL, Trigger.REPLAY] = Field(
        description="scheduled: the first send or a retry; manual: POST …/retry; replay: a "
                    "replay or recover")
    started_at: datetime = Field(description="when it started (UTC)", examples=[EXAMPLE_TIME])
    duration_ms: int = Field(description=DURATION_TEXT, examples=[84])
    status_code: int | None = Field(description=STATUS_CODE_TEXT, examples=[200])
    response_body: str | None = Field(description=RESPONSE_BODY_TEXT, examples=["ok"])
    error: str | None = Field(description=ATTEMPT_ERROR_TEXT, examples=[None])
    outcome: Literal[AttemptOutcome.SUCCEEDED, AttemptOutcome.FAILED] = Field(
        description=OUTCOME_TEXT)


class ReplayIn(Strict):
    status: Literal[DeliveryStatus.FAILED, DeliveryStatus.SUCCEEDED] = Field(
        default=DeliveryStatus.FAILED,
        description="which deliveries to send again: failed ones, or succeeded ones")
    subscription_id: Text | None = Field(default=None, max_length=40,
                                         description="only this subscription's deliveries",
                                         examples=[ID_EXAMPLES["sub"]])
    event_type: Text | None = Field(default=None, max_length=TYPE_MAX_LENGTH,
                                    description="only deliveries of events of this type",
                                    examples=[EXAMPLE_TYPE])
    since: datetime | None = Field(default=None, description=SINCE_TEXT,
                                   examples=["2025-01-31T00:00:00Z"])
    until: datetime | None = Field(default=None, description=UNTIL_TEXT,
                                   examples=["2025-02-01T00:00:00Z"])
    tenant_id: TenantId | None = Field(default=None,
                                       description="only deliveries to this tenant's "
                                                   "subscriptions")

    _times = field_validator("since", "until")(utc_filter_time)
    _text = field_validator("subscription_id", "event_type")(check_text)
    _tenant = field_validator("tenant_id")(check_tenant_id)


class RecoverIn(Strict):
    since: datetime = Field(description=SINCE_TEXT, examples=["2025-01-31T00:00:00Z"])
    until: datetime | None = Field(default=None, description=UNTIL_TEXT + "; left out: now",
                                   examples=["2025-02-01T00:00:00Z"])

    _times = field_validator("since", "until")(utc_filter_time)


class Replayed(BaseModel):
    replayed: int = Field(description="how many deliveries were queued again", examples=[12])
