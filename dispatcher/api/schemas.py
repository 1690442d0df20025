"""Request and response bodies, as docs/api.md describes them."""

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

# Examples shown in /openapi.json and /docs: what a real client sends and gets.
EXAMPLE_TYPE = "invoice.paid"
EXAMPLE_DATA = {"invoice_id": "in_1Nv2", "amount": 4200, "currency": "EUR"}
EXAMPLE_URL = "https://billing.example.com/webhooks/dispatcher"
EXAMPLE_SECRET = "whsec_H4s8XpoNTie2wfBajj18mypPbh0Mi3pp"
EXAMPLE_TIME = "2025-01-31T12:00:00.123456Z"
ID_EXAMPLES = {
    "evt": "evt_01jjrbyqm8e6tq3d2m4w5x7z9a", "sub": "sub_01jjrbz0v2f5kq8c6n3p4r7t8b",
    "dlv": "dlv_01jjrbz6k1h2j3m4n5p6q7r8sc", "att": "att_01jjrbzb3c4d5e6f7g8h9j0k1d",
    "key": "key_01jjrbzf5a6b7c8d9e0f1g2h3e",
}
# The texts of fields that several bodies share.
URL_TEXT = "where deliveries are POSTed: http or https, at most 2,048 characters"
EVENT_TYPES_TEXT = ("the event types this subscription receives: exact types ('invoice.paid'), "
                    "prefixes ('invoice.*') or '*' for all; 1 to 100, duplicates dropped")
SUB_DESCRIPTION_TEXT = "a note for people, at most 1,000 characters"
HEADERS_TEXT = ("extra HTTP headers sent with every delivery (at most 20); not the ones "
                "dispatcher sets itself (webhook-*, content-type, host, …)")
SECRET_TEXT = ("the signing secret: whsec_ + base64 of 24 to 64 bytes; generated when "
               "left out")
ENABLED_TEXT = "false holds new deliveries (held) until it is enabled again"
RATE_TEXT = "at most this many delivery attempts per second to it, over all workers; null: no limit"


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
Url = Annotated[str, Field(max_length=2048, examples=[EXAMPLE_URL]),
              Doc(pattern=URL_PATTERN, format="uri")]
Secret = Annotated[str, Doc(
    pattern=SECRET_PATTERN,
    description=f"whsec_ + base64 of {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes",
    examples=[EXAMPLE_SECRET],
)]
EventType = Annotated[str, Doc(pattern=TYPE_PATTERN.pattern, examples=[EXAMPLE_TYPE])]
EventPatterns = Annotated[
    list[Annotated[str, Doc(maxLength=TYPE_MAX_LENGTH, pattern=PATTERN_PATTERN.pattern)]],
    Doc(minItems=1, maxItems=MAX_EVENT_TYPES,
        description="exact types, 'prefix.*' or '*'; duplicates are dropped",
        examples=[["invoice.paid", "customer.*"]]),
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
    examples=[{"X-Team": "billing"}],
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
    url: Url = Field(description=URL_TEXT)
    event_types: EventPatterns | None = Field(
        default=None, description=EVENT_TYPES_TEXT + "; left out: ['*']")
    description: Text | None = Field(default=None, max_length=1000,
                                     description=SUB_DESCRIPTION_TEXT,
                                     examples=["billing sync"])
    headers: Headers | None = Field(default=None, description=HEADERS_TEXT)
    secret: Secret | None = Field(default=None, description=SECRET_TEXT)
    enabled: bool = Field(default=True, description=ENABLED_TEXT)
    rate_limit_per_second: int | None = Field(default=None, ge=1, le=100_000,
                                              description=RATE_TEXT, examples=[50])

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


def not_null(description: str) -> Any:
    """Left out: unchanged. Null is refused (routes/subscriptions.py), so not documented."""
    return Field(default=None, json_schema_extra=_not_null,
                 description=f"{description}; left out: unchanged")


class SubscriptionPatch(Strict):
    url: Url | None = not_null(URL_TEXT)
    event_types: EventPatterns | None = not_null(EVENT_TYPES_TEXT)
    description: Text | None = Field(default=None, max_length=1000,
                                     description=SUB_DESCRIPTION_TEXT + "; null: empty",
                                     examples=["billing sync"])
    headers: Headers | None = not_null(HEADERS_TEXT + "; replaces all of them")
    secret: Secret | None = not_null(
        "a new signing secret, at once and without a grace period (rotate-secret keeps "
        "the old one valid for a while)")
    enabled: bool | None = not_null("true re-enables and releases its held deliveries, "
                                    "oldest first; false holds new ones")
    rate_limit_per_second: int | None = Field(default=None, ge=1, le=100_000,
                                              description=RATE_TEXT, examples=[50])

    _event_types = field_validator("event_types")(_check_event_types)
    _headers = field_validator("headers")(_check_headers)
    _secret = field_validator("secret")(_check_secret)
    _text = field_validator("description", "url")(_check_text)


class SubscriptionOut(BaseModel):
    id: str = Field(description="its id", examples=[ID_EXAMPLES["sub"]])
    url: str = Field(description=URL_TEXT, examples=[EXAMPLE_URL])
    event_types: list[str] = Field(description=EVENT_TYPES_TEXT,
                                   examples=[["invoice.paid", "customer.*"]])
    description: str = Field(description=SUB_DESCRIPTION_TEXT, examples=["billing sync"])
    headers: dict[str, str] = Field(description=HEADERS_TEXT, examples=[{"X-Team": "billing"}])
    secret: str = Field(description="the newest signing secret (whsec_…): verify deliveries "
                                    "with it", examples=[EXAMPLE_SECRET])
    enabled: bool = Field(description="whether deliveries go out to it now")
    disabled_reason: Literal["manual", "gone", "failing"] | None = Field(
        description="why it is disabled: manual (by a person), gone (the receiver answered "
                    "410), failing (no success for DISPATCHER_DISABLE_AFTER_SECONDS); null "
                    "while enabled")
    rate_limit_per_second: int | None = Field(description=RATE_TEXT, examples=[50])
    created_at: datetime = Field(description="when it was created (UTC)",
                                 examples=[EXAMPLE_TIME])
    updated_at: datetime = Field(description="when it last changed (UTC)",
                                 examples=[EXAMPLE_TIME])

    @classmethod
    def of(cls, row: dict[str, Any]) -> SubscriptionOut:
        return cls(**{k: row[k] for k in cls.model_fields if k != "secret"},
                   secret=row["secrets"][0]["secret"])


class RotateIn(Strict):
    grace_period_seconds: int = Field(
        default=86_400, ge=0, le=30 * 86_400, examples=[3600],
        description="how long the old secret keeps signing too, 0 to 30 days")
    secret: Secret | None = Field(default=None,
                                  description="the new secret; generated when left out")

    _secret = field_validator("secret")(_check_secret)


def _check_type(value: str) -> str:
    if not is_valid_type(value):
        raise ValueError("must be names of letters, digits and _ joined by dots, "
                         "like invoice.paid")
    return value


class TestIn(Strict):
    type: EventType = Field(default="dispatcher.test", max_length=TYPE_MAX_LENGTH,
                            description="the event type the test request carries")
    data: dict[str, Any] = Field(default_factory=dict, examples=[EXAMPLE_DATA],
                                 description="the test event's data, a JSON object")

    _type = field_validator("type")(_check_type)


STATUS_CODE_TEXT = "the receiver's HTTP status; null when no answer came"
DURATION_TEXT = "how long the request took, in milliseconds"
RESPONSE_BODY_TEXT = "the first 4 KiB of the receiver's answer, as text; null without one"
ATTEMPT_ERROR_TEXT = "what went wrong (timeout, connection refused, redirect, …); null if nothing"
OUTCOME_TEXT = "succeeded for a 2xx answer; failed for anything else"


class TestOut(BaseModel):
    status_code: int | None = Field(description=STATUS_CODE_TEXT, examples=[200])
    duration_ms: int = Field(description=DURATION_TEXT, examples=[84])
    response_body: str | None = Field(description=RESPONSE_BODY_TEXT, examples=["ok"])
    error: str | None = Field(description=ATTEMPT_ERROR_TEXT, examples=[None])
    outcome: Literal["succeeded", "failed"] = Field(description=OUTCOME_TEXT)


EVENT_TYPE_TEXT = ("the event type: names of letters, digits and _ joined by dots, at most "
                   f"{TYPE_MAX_LENGTH} characters")
EVENT_DATA_TEXT = "the event's data, a JSON object, sent to subscribers as it is"


class EventIn(Strict):
    type: EventType = Field(max_length=TYPE_MAX_LENGTH, description=EVENT_TYPE_TEXT)
    data: dict[str, Any] = Field(default_factory=dict, examples=[EXAMPLE_DATA],
                                 description=EVENT_DATA_TEXT + "; left out: {}")

    _type = field_validator("type")(_check_type)


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


class DeliveryOut(BaseModel):
    id: str = Field(description="the delivery's id", examples=[ID_EXAMPLES["dlv"]])
    event_id: str = Field(description="the event it delivers", examples=[ID_EXAMPLES["evt"]])
    event_type: str = Field(description="that event's type", examples=[EXAMPLE_TYPE])
    subscription_id: str = Field(description="the subscription it goes to",
                                 examples=[ID_EXAMPLES["sub"]])
    status: Literal["pending", "succeeded", "failed", "held", "cancelled"] = Field(
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
    trigger: Literal["scheduled", "manual", "replay"] = Field(
        description="scheduled: the first send or a retry; manual: POST …/retry; replay: a "
                    "replay or recover")
    started_at: datetime = Field(description="when it started (UTC)", examples=[EXAMPLE_TIME])
    duration_ms: int = Field(description=DURATION_TEXT, examples=[84])
    status_code: int | None = Field(description=STATUS_CODE_TEXT, examples=[200])
    response_body: str | None = Field(description=RESPONSE_BODY_TEXT, examples=["ok"])
    error: str | None = Field(description=ATTEMPT_ERROR_TEXT, examples=[None])
    outcome: Literal["succeeded", "failed"] = Field(description=OUTCOME_TEXT)


Role = Literal["admin", "publisher", "subscriber"]


ROLE_TEXT = ("admin: everything; publisher: sends and reads its events; subscriber: manages "
             "its subscriptions and reads their deliveries")


class KeyIn(Strict):
    role: Role = Field(description=ROLE_TEXT, examples=["publisher"])
    name: Text = Field(min_length=1, max_length=200, examples=["billing service"],
                       description="a name for people, 1 to 200 characters")

    _name = field_validator("name")(_check_text)


class KeyOut(BaseModel):
    id: str = Field(description="the key's id (not the key itself)",
                    examples=[ID_EXAMPLES["key"]])
    role: Role = Field(description=ROLE_TEXT, examples=["publisher"])
    name: str = Field(description="its name", examples=["billing service"])
    created_at: datetime = Field(description="when it was made (UTC)", examples=[EXAMPLE_TIME])


class KeyCreated(KeyOut):
    key: str = Field(description="the key to send as 'Authorization: Bearer <key>'; shown in "
                                 "this answer only, never again",
                     examples=["dk_3vQ9x0Zq2hXbq4gk1T7m8WcYpLr5sN6uJdE0aFiHoKc"])


class HealthOut(BaseModel):
    status: Literal["ok"] = Field(description="always ok: the process answers")


class ReadyOut(BaseModel):
    status: Literal["ready"] = Field(description="ready: the database answers and the worker "
                                                 "runs")


class ErrorBody(BaseModel):
    code: str = Field(description="what went wrong, for programs: one of the codes listed "
                                  "on each answer", examples=["not_found"])
    message: str = Field(description="what went wrong, in plain words, for people",
                         examples=[f"no such resource: {ID_EXAMPLES['sub']}"])


class ErrorOut(BaseModel):
    """Every error answer: the error's code and message."""

    error: ErrorBody = Field(description="the error")


class Listing(BaseModel, Generic[T]):
    data: list[T] = Field(description="this page, in the order asked for (desc: newest "
                                      "first)")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on "
                                                "the last page")


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


SINCE_TEXT = "only deliveries created at or after this time (a time without a zone is UTC)"
UNTIL_TEXT = "only deliveries created before this time (a time without a zone is UTC)"


class ReplayIn(Strict):
    status: Literal["failed", "succeeded"] = Field(
        default="failed",
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

    _times = field_validator("since", "until")(utc_filter_time)
    _text = field_validator("subscription_id", "event_type")(_check_text)


class RecoverIn(Strict):
    since: datetime = Field(description=SINCE_TEXT, examples=["2025-01-31T00:00:00Z"])
    until: datetime | None = Field(default=None, description=UNTIL_TEXT + "; left out: now",
                                   examples=["2025-02-01T00:00:00Z"])

    _times = field_validator("since", "until")(utc_filter_time)


class Replayed(BaseModel):
    replayed: int = Field(description="how many deliveries were queued again", examples=[12])


class EventReplayIn(Strict):
    subscription_ids: list[Text] | None = Field(
        default=None, min_length=1, max_length=1000, examples=[[ID_EXAMPLES["sub"]]],
        description="deliver to exactly these subscriptions (1 to 1,000), even if they no "
                    "longer match; left out: to every subscription that matches now")

    @field_validator("subscription_ids")
    @classmethod
    def _no_nul(cls, value: list[str] | None) -> list[str] | None:
        for item in value or ():
            _check_text(item)
        return value


class EventReplayed(BaseModel):
    deliveries: int = Field(description="how many new deliveries were made", examples=[2])
