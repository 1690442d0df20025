"""The bodies of ``/v1/subscriptions``: create, change, show, rotate, test."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from ...event_types import TYPE_MAX_LENGTH
from ...signing import shown
from ...vocabulary import AttemptOutcome, DisabledReason, SignatureScheme
from .common import (
    ATTEMPT_ERROR_TEXT,
    DURATION_TEXT,
    ENABLED_TEXT,
    EVENT_TYPES_TEXT,
    EXAMPLE_DATA,
    EXAMPLE_SECRET,
    EXAMPLE_TIME,
    EXAMPLE_URL,
    HEADERS_TEXT,
    ID_EXAMPLES,
    OUTCOME_TEXT,
    RATE_TEXT,
    RESPONSE_BODY_TEXT,
    SECRET_TEXT,
    STATUS_CODE_TEXT,
    SUB_DESCRIPTION_TEXT,
    TENANT_TEXT,
    URL_TEXT,
    EventPatterns,
    EventType,
    Headers,
    Secret,
    Strict,
    TenantId,
    Text,
    Url,
    check_event_types,
    check_headers,
    check_secret,
    check_tenant_id,
    check_text,
    check_type,
)

FILTER_TEXT = ("a MongoDB-style query on the body a subscriber receives ({type, timestamp, "
               "data}): dotted paths, a plain value meaning $eq, and $eq $ne $gt $gte $lt "
               "$lte $in $nin $exists $and $or $not; only events of its types that it "
               "matches get a delivery; null: every event of its types")
SCHEDULE_TEXT = ("1 to 20 delays in seconds (each over 0 and at most 604,800, 7 days) that "
                 "replace DISPATCHER_RETRY_SCHEDULE for it: the n-th retry waits the n-th "
                 "delay; null: the global schedule")
TIMEOUT_TEXT = ("the deadline of one attempt to it, 1 to 60 seconds; null: "
                "DISPATCHER_DELIVERY_TIMEOUT_SECONDS")
SCHEME_TEXT = ("how requests are signed (Standard Webhooks): v1, HMAC-SHA256 with the shared "
               "secret (whsec_); v1a, Ed25519, verified with the public key (whpk_) shown as "
               "secret while the private key stays in the service")
ORDERED_TEXT = ("true: its deliveries are sent one at a time, in the order their events were "
                "accepted, across all workers; the next waits until the one before succeeded "
                "or failed for good (a failing one holds the rest back), and each request "
                "carries dispatcher-sequence: N")
Scheme = Literal[SignatureScheme.V1, SignatureScheme.V1A]
MAX_DELAY_SECONDS = 7 * 86_400
Delay = Annotated[float, Field(gt=0, le=MAX_DELAY_SECONDS, allow_inf_nan=False)]
Schedule = Annotated[list[Delay], Field(min_length=1, max_length=20)]
FILTER_EXAMPLE = {"data.amount": {"$gte": 100}, "data.currency": {"$in": ["EUR", "USD"]}}


def _json_object(schema: dict[str, Any]) -> None:
    """Document a field checked by the route (``filters.check``) as the JSON object it is."""
    schema.pop("default", None)
    schema.update({"anyOf": [{"type": "object"}, {"type": "null"}]})


def filter_field(description: str) -> Any:
    # Any JSON here: the route's check names the place of a mistake (422 invalid_filter).
    return Field(default=None, description=description, examples=[FILTER_EXAMPLE],
                 json_schema_extra=_json_object)


class _SubscriptionChecks(Strict):
    """The checks a subscription's fields get, at creation and in a change alike."""

    _event_types = field_validator("event_types", check_fields=False)(check_event_types)
    _headers = field_validator("headers", check_fields=False)(check_headers)
    _secret = field_validator("secret", check_fields=False)(check_secret)
    _text = field_validator("description", "url", check_fields=False)(check_text)
    _tenant = field_validator("tenant_id", check_fields=False)(check_tenant_id)


class SubscriptionIn(_SubscriptionChecks):
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
    filter: Any = filter_field(FILTER_TEXT)
    retry_schedule: Schedule | None = Field(default=None, description=SCHEDULE_TEXT,
                                            examples=[[10, 60, 600, 3600]])
    timeout_seconds: int | None = Field(default=None, ge=1, le=60, description=TIMEOUT_TEXT,
                                        examples=[30])
    signature_scheme: Scheme = Field(default=SignatureScheme.V1, description=SCHEME_TEXT)
    ordered: bool = Field(default=False, description=ORDERED_TEXT)
    tenant_id: TenantId | None = Field(
        default=None, description="the tenant it belongs to, which must exist (admin keys; a "
        "key scoped to a tenant makes its tenant's); it cannot change later; left out: the "
        "creating key's tenant, or none")


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


class SubscriptionPatch(_SubscriptionChecks):
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
    filter: Any = filter_field(FILTER_TEXT + "; left out: unchanged")
    retry_schedule: Schedule | None = Field(default=None,
                                            description=SCHEDULE_TEXT + "; left out: unchanged",
                                            examples=[[10, 60, 600, 3600]])
    timeout_seconds: int | None = Field(default=None, ge=1, le=60, examples=[30],
                                        description=TIMEOUT_TEXT + "; left out: unchanged")
    signature_scheme: Scheme | None = not_null(
        SCHEME_TEXT + "; a change makes a new key of the new scheme at once (no grace "
        "period), unless secret gives one")
    ordered: bool | None = not_null(
        ORDERED_TEXT + "; made false, those waiting are all sent at once; made true, "
        "deliveries made before are sent as they would have been")
    tenant_id: TenantId | None = Field(
        default=None, description="cannot change: only its present value is taken (422 "
        "otherwise); left out: unchanged")


class SubscriptionOut(BaseModel):
    id: str = Field(description="its id", examples=[ID_EXAMPLES["sub"]])
    url: str = Field(description=URL_TEXT, examples=[EXAMPLE_URL])
    event_types: list[str] = Field(description=EVENT_TYPES_TEXT,
                                   examples=[["invoice.paid", "customer.*"]])
    description: str = Field(description=SUB_DESCRIPTION_TEXT, examples=["billing sync"])
    headers: dict[str, str] = Field(description=HEADERS_TEXT, examples=[{"X-Team": "billing"}])
    secret: str = Field(description="what to verify deliveries with: the newest signing "
                                    "secret (whsec_…) for v1, the newest public key (whpk_…) "
                                    "for v1a", examples=[EXAMPLE_SECRET])
    enabled: bool = Field(description="whether deliveries go out to it now")
    disabled_reason: Literal[DisabledReason.MANUAL, DisabledReason.GONE,
                             DisabledReason.FAILING] | None = Field(
        description="why it is disabled: manual (by a person), gone (the receiver answered "
                    "410), failing (no success for DISPATCHER_DISABLE_AFTER_SECONDS); null "
                    "while enabled")
    rate_limit_per_second: int | None = Field(description=RATE_TEXT, examples=[50])
    filter: dict[str, Any] | None = Field(description=FILTER_TEXT, examples=[FILTER_EXAMPLE])
    retry_schedule: list[float] | None = Field(description=SCHEDULE_TEXT,
                                               examples=[[10, 60, 600, 3600]])
    timeout_seconds: int | None = Field(description=TIMEOUT_TEXT, examples=[30])
    signature_scheme: Scheme = Field(description=SCHEME_TEXT)
    ordered: bool = Field(description=ORDERED_TEXT)
    tenant_id: str | None = Field(description=TENANT_TEXT, examples=["acme-corp"])
    created_at: datetime = Field(description="when it was created (UTC)",
                                 examples=[EXAMPLE_TIME])
    updated_at: datetime = Field(description="when it last changed (UTC)",
                                 examples=[EXAMPLE_TIME])

    @classmethod
    def of(cls, row: dict[str, Any]) -> SubscriptionOut:
        return cls(**{k: row[k] for k in cls.model_fields if k != "secret"},
                   secret=shown(row["secrets"][0]["secret"]))


class RotateIn(Strict):
    grace_period_seconds: int = Field(
        default=86_400, ge=0, le=30 * 86_400, examples=[3600],
        description="how long the old secret keeps signing too, 0 to 30 days")
    secret: Secret | None = Field(default=None,
                                  description="the new secret; generated when left out")

    _secret = field_validator("secret")(check_secret)


class TestIn(Strict):
    type: EventType = Field(default="dispatcher.test", max_length=TYPE_MAX_LENGTH,
                            description="the event type the test request carries")
    data: dict[str, Any] = Field(default_factory=dict, examples=[EXAMPLE_DATA],
                                 description="the test event's data, a JSON object")

    _type = field_validator("type")(check_type)


class TestOut(BaseModel):
    status_code: int | None = Field(description=STATUS_CODE_TEXT, examples=[200])
    duration_ms: int = Field(description=DURATION_TEXT, examples=[84])
    response_body: str | None = Field(description=RESPONSE_BODY_TEXT, examples=["ok"])
    error: str | None = Field(description=ATTEMPT_ERROR_TEXT, examples=[None])
    outcome: Literal[AttemptOutcome.SUCCEEDED, AttemptOutcome.FAILED] = Field(
        description=OUTCOME_TEXT)


class FilterTestEvent(Strict):
    type: EventType = Field(max_length=TYPE_MAX_LENGTH, examples=["invoice.paid"],
                            description="the event type")
    data: dict[str, Any] = Field(default_factory=dict, examples=[{"amount": 250,
                                                                  "currency": "EUR"}],
                                 description="the event's data, a JSON object; left out: {}")

    _type = field_validator("type")(check_type)


class FilterTestIn(Strict):
    filter: Any = Field(description=FILTER_TEXT, examples=[FILTER_EXAMPLE],
                        json_schema_extra={"type": "object"})
    event: FilterTestEvent = Field(description="the event to try it on; its timestamp is now")


class FilterTestOut(BaseModel):
    matches: bool = Field(description="whether a subscription with this filter would get a "
                                      "delivery of the event (its types aside)")
