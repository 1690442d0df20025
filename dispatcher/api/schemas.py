"""Request and response bodies, as ../shared/API.md defines them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..event_types import TYPE_MAX_LENGTH, is_valid_pattern, is_valid_type
from ..signing import secret_key

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
RESERVED_HEADERS = {
    "content-type", "content-length", "host", "user-agent", "transfer-encoding",
    "connection", "webhook-id", "webhook-timestamp", "webhook-signature", "te", "upgrade",
}
MAX_HEADERS = 20
MAX_EVENT_TYPES = 100
T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_event_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if not value:
        raise ValueError("give at least one pattern, or ['*'] for every event type")
    if len(value) > MAX_EVENT_TYPES:
        raise ValueError(f"at most {MAX_EVENT_TYPES} patterns")
    bad = [p for p in value if not is_valid_pattern(p)]
    if bad:
        raise ValueError(f"not a valid pattern: {bad[0]!r} (use 'a.b', 'a.*' or '*')")
    return list(dict.fromkeys(value))


def _check_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    for name, text in value.items():
        if not HEADER_NAME.fullmatch(name):
            raise ValueError(f"not a valid header name: {name!r}")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by dispatcher and cannot be overridden")
        if len(text) > 1024 or not all(" " <= c <= "~" or c == "\t" for c in text):
            raise ValueError(
                f"header {name!r}: the value must be printable ASCII, at most 1024 characters"
            )
    return value


def _check_text(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _check_secret(value: str | None) -> str | None:
    if value is not None:
        secret_key(value)
    return value


class SubscriptionIn(Strict):
    url: str = Field(max_length=2048)
    event_types: list[str] | None = None
    description: str | None = Field(default=None, max_length=1000)
    headers: dict[str, str] | None = None
    secret: str | None = None
    enabled: bool = True
    rate_limit_per_second: int | None = Field(default=None, ge=1, le=100_000)

    _event_types = field_validator("event_types")(_check_event_types)
    _headers = field_validator("headers")(_check_headers)
    _secret = field_validator("secret")(_check_secret)
    _text = field_validator("description", "url")(_check_text)


class SubscriptionPatch(Strict):
    url: str | None = Field(default=None, max_length=2048)
    event_types: list[str] | None = None
    description: str | None = Field(default=None, max_length=1000)
    headers: dict[str, str] | None = None
    secret: str | None = None
    enabled: bool | None = None
    rate_limit_per_second: int | None = Field(default=None, ge=1, le=100_000)

    _event_types = field_validator("event_types")(_check_event_types)
    _headers = field_validator("headers")(_check_headers)
    _secret = field_validator("secret")(_check_secret)
    _text = field_validator("description", "url")(_check_text)


class SubscriptionOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str
    headers: dict[str, str]
    secret: str
    enabled: bool
    disabled_reason: str | None
    rate_limit_per_second: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> SubscriptionOut:
        return cls(**{k: row[k] for k in cls.model_fields if k != "secret"},
                   secret=row["secrets"][0]["secret"])


class RotateIn(Strict):
    grace_period_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400)
    secret: str | None = None

    _secret = field_validator("secret")(_check_secret)


def _check_type(value: str) -> str:
    if not is_valid_type(value):
        raise ValueError("must match ^[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*$")
    return value


class TestIn(Strict):
    type: str = Field(default="dispatcher.test", max_length=TYPE_MAX_LENGTH)
    data: dict[str, Any] = Field(default_factory=dict)

    _type = field_validator("type")(_check_type)


class TestOut(BaseModel):
    status_code: int | None
    duration_ms: int
    response_body: str | None
    error: str | None
    outcome: Literal["succeeded", "failed"]


class EventIn(Strict):
    type: str = Field(max_length=TYPE_MAX_LENGTH)
    data: dict[str, Any] = Field(default_factory=dict)

    _type = field_validator("type")(_check_type)


class EventAccepted(BaseModel):
    id: str
    type: str
    created_at: datetime
    deliveries: int


class EventOut(BaseModel):
    id: str
    type: str
    created_at: datetime
    data: Any


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    subscription_id: str
    status: Literal["pending", "succeeded", "failed", "held", "cancelled"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class AttemptOut(BaseModel):
    id: str
    delivery_id: str
    number: int
    trigger: Literal["scheduled", "manual", "replay"]
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    outcome: Literal["succeeded", "failed"]


class KeyIn(Strict):
    role: Literal["admin", "publisher", "subscriber"]
    name: str = Field(min_length=1, max_length=200)

    _name = field_validator("name")(_check_text)


class KeyOut(BaseModel):
    id: str
    role: str
    name: str
    created_at: datetime


class KeyCreated(KeyOut):
    key: str


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class Listing(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


def _utc(value: datetime | None) -> datetime | None:
    """Times without a zone are taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ReplayIn(Strict):
    status: Literal["failed", "succeeded"] = "failed"
    subscription_id: str | None = Field(default=None, max_length=40)
    event_type: str | None = Field(default=None, max_length=TYPE_MAX_LENGTH)
    since: datetime | None = None
    until: datetime | None = None

    _times = field_validator("since", "until")(_utc)


class RecoverIn(Strict):
    since: datetime
    until: datetime | None = None

    _times = field_validator("since", "until")(_utc)


class Replayed(BaseModel):
    replayed: int


class EventReplayIn(Strict):
    subscription_ids: list[str] | None = Field(default=None, min_length=1, max_length=1000)


class EventReplayed(BaseModel):
    deliveries: int
