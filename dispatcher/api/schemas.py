"""Request and response bodies, as ../shared/API.md defines them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..event_types import (
    PATTERN_PATTERN,
    TYPE_MAX_LENGTH,
    TYPE_PATTERN,
    is_valid_pattern,
    is_valid_type,
)
from ..signing import SECRET_MAX_BYTES, SECRET_MIN_BYTES, secret_key

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


class Doc:
    """JSON Schema keywords added to a type's documentation (``/openapi.json``) only.

    The validators below stay the checks, with their own messages; this says the same in
    the schema, so that clients (and the fuzzer, tests/test_fuzz.py) know what is valid.
    """

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


def _base64_of(low: int, high: int) -> str:
    """A regex for padded base64 of ``low`` to ``high`` bytes (``low`` a multiple of 3)."""
    b64 = "[A-Za-z0-9+/]"
    quads, rest = divmod(high, 3)
    tail = {0: "", 1: f"{b64}{{2}}==", 2: f"{b64}{{3}}="}
    shorter = f"(?:{b64}{{4}}){{{low // 3},{quads - 1}}}(?:{b64}{{4}}|{b64}{{3}}=|{b64}{{2}}==)?"
    longest = f"(?:{b64}{{4}}){{{quads}}}" + (f"(?:{tail[rest]})?" if rest else "")
    return f"(?:{shorter}|{longest})"


NO_NUL = r"^[^\x00]*$"
# http or https, a host (name, IPv4 or [IPv6]) without user-info, a port from 1: what
# targets.check_url accepts before it looks at the address.
URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://(?:\[[0-9A-Fa-f:.]+\]|[^\x00-\x20/?#@:\[\]\\]+)"
    r"(?::0*[1-9][0-9]{0,4})?(?:[/?#][^\x00-\x20]*)?$"
)
SECRET_PATTERN = f"^whsec_{_base64_of(SECRET_MIN_BYTES, SECRET_MAX_BYTES)}$"
Url = Annotated[str, Field(max_length=2048), Doc(pattern=URL_PATTERN, format="uri")]
Secret = Annotated[str, Doc(
    pattern=SECRET_PATTERN,
    description=f"whsec_ + base64 of {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes",
)]
EventType = Annotated[str, Doc(pattern=TYPE_PATTERN.pattern)]
EventPatterns = Annotated[
    list[Annotated[str, Doc(maxLength=TYPE_MAX_LENGTH, pattern=PATTERN_PATTERN.pattern)]],
    Doc(minItems=1, maxItems=MAX_EVENT_TYPES,
        description="exact types, 'prefix.*' or '*'; duplicates are dropped"),
]
Headers = Annotated[dict[str, str], Doc(
    maxProperties=MAX_HEADERS,
    propertyNames={
        "pattern": HEADER_NAME.pattern,
        "not": {"pattern": "^(?:" + "|".join(_any_case(h) for h in sorted(RESERVED_HEADERS))
                + ")$"},
    },
    additionalProperties={"type": "string", "maxLength": 1024, "pattern": r"^[\t\x20-\x7e]*$"},
    description="sent with every request; not the ones dispatcher sets itself",
)]
Text = Annotated[str, Doc(pattern=NO_NUL)]


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
    url: Url
    event_types: EventPatterns | None = None
    description: Text | None = Field(default=None, max_length=1000)
    headers: Headers | None = None
    secret: Secret | None = None
    enabled: bool = True
    rate_limit_per_second: int | None = Field(default=None, ge=1, le=100_000)

    _event_types = field_validator("event_types")(_check_event_types)
    _headers = field_validator("headers")(_check_headers)
    _secret = field_validator("secret")(_check_secret)
    _text = field_validator("description", "url")(_check_text)


def _not_null(schema: dict[str, Any]) -> None:
    """Document a field that may be left out but not be null (the route answers 422)."""
    schema.pop("default", None)
    branches = [b for b in schema.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches


def not_null() -> Any:
    """Left out: unchanged. Null is refused (routes/subscriptions.py), so not documented."""
    return Field(default=None, json_schema_extra=_not_null)


class SubscriptionPatch(Strict):
    url: Url | None = not_null()
    event_types: EventPatterns | None = not_null()
    description: Text | None = Field(default=None, max_length=1000)
    headers: Headers | None = not_null()
    secret: Secret | None = not_null()
    enabled: bool | None = not_null()
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
    disabled_reason: Literal["manual", "gone", "failing"] | None
    rate_limit_per_second: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> SubscriptionOut:
        return cls(**{k: row[k] for k in cls.model_fields if k != "secret"},
                   secret=row["secrets"][0]["secret"])


class RotateIn(Strict):
    grace_period_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400)
    secret: Secret | None = None

    _secret = field_validator("secret")(_check_secret)


def _check_type(value: str) -> str:
    if not is_valid_type(value):
        raise ValueError("must be names of letters, digits and _ joined by dots, "
                         "like invoice.paid")
    return value


class TestIn(Strict):
    type: EventType = Field(default="dispatcher.test", max_length=TYPE_MAX_LENGTH)
    data: dict[str, Any] = Field(default_factory=dict)

    _type = field_validator("type")(_check_type)


class TestOut(BaseModel):
    status_code: int | None
    duration_ms: int
    response_body: str | None
    error: str | None
    outcome: Literal["succeeded", "failed"]


class EventIn(Strict):
    type: EventType = Field(max_length=TYPE_MAX_LENGTH)
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
    data: dict[str, Any]


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


Role = Literal["admin", "publisher", "subscriber"]


class KeyIn(Strict):
    role: Role
    name: Text = Field(min_length=1, max_length=200)

    _name = field_validator("name")(_check_text)


class KeyOut(BaseModel):
    id: str
    role: Role
    name: str
    created_at: datetime


class KeyCreated(KeyOut):
    key: str


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class Listing(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


# Filter times are clamped to these: no id, and so no row, is from outside them, and the
# store's windows (a few seconds wider) must not step past year 1 or 9999.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def utc_filter_time(value: datetime | None) -> datetime | None:
    """A time of a filter, in UTC (taken as UTC without a zone), clamped to the years ids
    can be from. ValueError if it is not a time in UTC (past year 1 or 9999 there)."""
    if value is None:
        return None
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range in UTC") from None
    return min(max(value, EARLIEST), LATEST)


class ReplayIn(Strict):
    status: Literal["failed", "succeeded"] = "failed"
    subscription_id: Text | None = Field(default=None, max_length=40)
    event_type: Text | None = Field(default=None, max_length=TYPE_MAX_LENGTH)
    since: datetime | None = None
    until: datetime | None = None

    _times = field_validator("since", "until")(utc_filter_time)
    _text = field_validator("subscription_id", "event_type")(_check_text)


class RecoverIn(Strict):
    since: datetime
    until: datetime | None = None

    _times = field_validator("since", "until")(utc_filter_time)


class Replayed(BaseModel):
    replayed: int


class EventReplayIn(Strict):
    subscription_ids: list[Text] | None = Field(default=None, min_length=1, max_length=1000)

    @field_validator("subscription_ids")
    @classmethod
    def _no_nul(cls, value: list[str] | None) -> list[str] | None:
        for item in value or ():
            _check_text(item)
        return value


class EventReplayed(BaseModel):
    deliveries: int
