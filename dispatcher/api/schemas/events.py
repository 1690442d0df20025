"""The bodies of ``/v1/events``: publish, show, replay to subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from ...event_types import TYPE_MAX_LENGTH
from .common import (
    EXAMPLE_DATA,
    EXAMPLE_TIME,
    EXAMPLE_TYPE,
    ID_EXAMPLES,
    EventType,
    Strict,
    TenantId,
    Text,
    check_tenant_id,
    check_text,
    check_type,
)

EVENT_TYPE_TEXT = ("the event type: names of letters, digits and _ joined by dots, at most "
                   f"{TYPE_MAX_LENGTH} characters")
EVENT_DATA_TEXT = "the event's data, a JSON object, sent to subscribers as it is"
EVENT_TENANT_TEXT = "the tenant it was published for; null: none, or a broadcast"
BROADCAST_TEXT = "whether it went to every matching subscription, of every tenant and of none"


class EventIn(Strict):
    type: EventType = Field(max_length=TYPE_MAX_LENGTH, description=EVENT_TYPE_TEXT)
    data: dict[str, Any] = Field(default_factory=dict, examples=[EXAMPLE_DATA],
                                 description=EVENT_DATA_TEXT + "; left out: {}")
    tenant_id: TenantId | None = Field(
        default=None, description="publish for this tenant only: it goes to that tenant's "
        "subscriptions (none if the tenant does not exist); left out: to subscriptions of "
        "no tenant")
    broadcast: bool = Field(default=False, description="true: to every matching "
                            "subscription, of every tenant and of none; not with tenant_id")

    _type = field_validator("type")(check_type)
    _tenant = field_validator("tenant_id")(check_tenant_id)

    @model_validator(mode="after")
    def _one_audience(self) -> EventIn:
        if self.broadcast and self.tenant_id is not None:
            raise ValueError("give tenant_id (one tenant) or broadcast (every one), not both")
        return self


class EventAccepted(BaseModel):
    id: str = Field(description="the event's id; also the webhook-id of its deliveries",
                    examples=[ID_EXAMPLES["evt"]])
    type: str = Field(description="the event type", examples=[EXAMPLE_TYPE])
    created_at: datetime = Field(description="when it was accepted (UTC); the timestamp "
                                             "its subscribers receive", examples=[EXAMPLE_TIME])
    tenant_id: str | None = Field(description=EVENT_TENANT_TEXT, examples=["acme-corp"])
    broadcast: bool = Field(description=BROADCAST_TEXT)
    deliveries: int = Field(description="how many deliveries it made: one per matching "
                                        "subscription", examples=[2])


class EventOut(BaseModel):
    id: str = Field(description="the event's id", examples=[ID_EXAMPLES["evt"]])
    type: str = Field(description="the event type", examples=[EXAMPLE_TYPE])
    created_at: datetime = Field(description="when it was accepted (UTC)",
                                 examples=[EXAMPLE_TIME])
    data: dict[str, Any] = Field(description=EVENT_DATA_TEXT, examples=[EXAMPLE_DATA])
    tenant_id: str | None = Field(description=EVENT_TENANT_TEXT, examples=["acme-corp"])
    broadcast: bool = Field(description=BROADCAST_TEXT)


class EventReplayIn(Strict):
    subscription_ids: list[Text] | None = Field(
        default=None, min_length=1, max_length=1000, examples=[[ID_EXAMPLES["sub"]]],
        description="deliver to exactly these subscriptions (1 to 1,000), even if they no "
                    "longer match; left out: to every subscription that matches now")

    @field_validator("subscription_ids")
    @classmethod
    def _no_nul(cls, value: list[str] | None) -> list[str] | None:
        for item in value or ():
            check_text(item)
        return value


class EventReplayed(BaseModel):
    deliveries: int = Field(description="how many new deliveries were made", examples=[2])
