"""The bodies of ``/v1/events``: publish, show, replay to subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ...event_types import TYPE_MAX_LENGTH
from .common import (
    EXAMPLE_DATA,
    EXAMPLE_TIME,
    EXAMPLE_TYPE,
    ID_EXAMPLES,
    EventType,
    Strict,
    Text,
    check_text,
    check_type,
)

EVENT_TYPE_TEXT = ("the event type: names of letters, digits and _ joined by dots, at most "
                   f"{TYPE_MAX_LENGTH} characters")
EVENT_DATA_TEXT = "the event's data, a JSON object, sent to subscribers as it is"


class EventIn(Strict):
    type: EventType = Field(max_length=TYPE_MAX_LENGTH, description=EVENT_TYPE_TEXT)
    data: dict[str, Any] = Field(default_factory=dict, examples=[EXAMPLE_DATA],
                                 description=EVENT_DATA_TEXT + "; left out: {}")

    _type = field_validator("type")(check_type)


class EventAccepted(BaseModel):
    id: str = Field(description="the event's id; also the webhook-id of its deliveries",
                    examples=[ID_EXAMPLES["evt"]])
    type: str = Field(description="the event type", examples=[EXAMPLE_TYPE])
    created_at: datetime = Field(description="when it was accepted (UTC); the timestamp "
                                             "its subscribers receive", examples=[EXAMPLE_TIME])
    deliveries: int = Field(description="how many deliveries it made: one per matching "
                                        "subscription", examples=[2])


class EventOut(BaseModel):
    id: str = Field(description="the event's id", examples=[ID_EXAMPLES["evt"]])
    type: str = Field(description="the event type", examples=[EXAMPLE_TYPE])
    created_at: datetime = Field(description="when it was accepted (UTC)",
                                 examples=[EXAMPLE_TIME])
    data: dict[str, Any] = Field(description=EVENT_DATA_TEXT, examples=[EXAMPLE_DATA])


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
