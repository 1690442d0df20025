"""What the request and response bodies share: field types with their checks and their
documentation in ``/openapi.json``, examples, errors, lists, health, filter times."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ...clock import as_utc
from ...event_types import (
    PATTERN_PATTERN,
    TYPE_MAX_LENGTH,
    TYPE_PATTERN,
    is_valid_pattern,
    is_valid_type,
)
from ...ids import TENANT_ID_PATTERN, TENANT_ID_RULE, is_tenant_id
from ...signing import SECRET_MAX_BYTES, SECRET_MIN_BYTES, secret_key

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
RESERVED_HEADERS = {
    "content-type", "content-length", "host", "user-agent", "transfer-encoding",
    "connection", "webhook-id", "webhook-timestamp", "webhook-signature", "te", "upgrade",
    "dispatcher-sequence",
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
SECRET_TEXT = ("the signing secret: for v1, whsec_ + base64 of 24 to 64 bytes; for v1a, an "
               "Ed25519 private key, whsk_ + base64 of its 32-byte seed (the answer then shows "
               "its public key, whpk_…); generated when left out")
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
        schema: dict[str, Any] = handler(core_schema)
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
EXAMPLE_TENANT = "acme-corp"
TenantId = Annotated[str, Doc(pattern=TENANT_ID_PATTERN.pattern, maxLength=64,
                              examples=[EXAMPLE_TENANT])]
TENANT_TEXT = "the tenant (your customer id) it belongs to; null: none"


def check_tenant_id(value: str | None) -> str | None:
    if value is not None and not is_tenant_id(value):
        raise ValueError(f"must be {TENANT_ID_RULE}")
    return value


def check_event_types(value: list[str] | None) -> list[str] | None:
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


def check_headers(value: dict[str, str] | None) -> dict[str, str] | None:
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


def check_text(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def check_secret(value: str | None) -> str | None:
    if value is not None:
        secret_key(value)
    return value


def check_type(value: str) -> str:
    if not is_valid_type(value):
        raise ValueError("must be names of letters, digits and _ joined by dots, "
                         "like invoice.paid")
    return value


STATUS_CODE_TEXT = "the receiver's HTTP status; null when no answer came"
DURATION_TEXT = "how long the request took, in milliseconds"
RESPONSE_BODY_TEXT = "the first 4 KiB of the receiver's answer, as text; null without one"
ATTEMPT_ERROR_TEXT = "what went wrong (timeout, connection refused, redirect, …); null if nothing"
OUTCOME_TEXT = "succeeded for a 2xx answer; failed for anything else"


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
        value = as_utc(value)
    except OverflowError:
        raise ValueError("out of range in UTC") from None
    return min(max(value, EARLIEST), LATEST)


SINCE_TEXT = "only deliveries created at or after this time (a time without a zone is UTC)"
UNTIL_TEXT = "only deliveries created before this time (a time without a zone is UTC)"
