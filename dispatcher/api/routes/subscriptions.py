from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from ... import event_types, filters
from ...clock import utcnow
from ...probe import send_test
from ...store import DeliveryFilter
from ...store.rows import event_body
from ...targets import InvalidTarget, check_url, guard_for
from ...vocabulary import DeliveryStatus, Role
from ..auth import Admin, Caller, StoreDep, SubscriberOrAdmin
from ..errors import BODY_ERRORS, ApiError, error_responses
from ..paging import PageParams, TenantQuery, listing, page_params, path_id, query_tenant
from ..query import StrictQueryRoute
from ..schemas import (
    FilterTestIn,
    FilterTestOut,
    Listing,
    RecoverIn,
    Replayed,
    RotateIn,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionPatch,
    TestIn,
    TestOut,
)

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"],
                   route_class=StrictQueryRoute)
NOT_NULL = ("url", "event_types", "headers", "enabled", "signature_scheme", "ordered")
SubId = Annotated[str, path_id("sub")]
INVALID_URL = ("validation_error, invalid_url: a URL that may not be used, "
               "invalid_filter: a filter that breaks the rules (the place is named), or "
               "reserved_event_type: dispatcher.… types named by a key other than an admin's "
               "or for a tenant's subscription")
INVALID_FILTER = "validation_error, or invalid_filter: a filter that breaks the rules"
TOO_MANY = ("too_many_subscriptions: the key owns DISPATCHER_MAX_SUBSCRIPTIONS_PER_OWNER "
            "subscriptions already")


def _tenant_for(who: Caller, asked: str | None) -> str | None:
    """The tenant a new subscription belongs to: an admin names any (or none); a scoped key
    makes its own tenant's; to an unscoped subscriber every tenant is unknown."""
    named = who.tenant_filter(asked)
    return named if who.role == Role.ADMIN else who.tenant_id


def _checked_filter(query: Any) -> Any:
    """``query`` as given, unless it breaks the rules (422 ``invalid_filter``)."""
    if query is not None:
        try:
            filters.check(query)
        except filters.InvalidFilter as exc:
            raise ApiError(422, "invalid_filter", str(exc)) from None
    return query


def _checked_types(who: Caller, patterns: list[str] | None) -> None:
    """Operational events tell of every subscription: only an admin may subscribe to them."""
    if who.role != Role.ADMIN and (named := event_types.reaches_reserved(patterns or ())):
        raise ApiError(422, "reserved_event_type", f"event_types: {named[0]} names "
                       "dispatcher's operational events, which only an admin's subscriptions "
                       "receive")


def _checked_url(request: Request, url: str) -> str:
    try:
        # The connect-time guard's own rules (transport.py), so both agree on every address.
        return check_url(url, guard_for(request.state.settings))
    except InvalidTarget as exc:
        raise ApiError(422, "invalid_url", str(exc)) from None


@router.post("", status_code=201, response_model=SubscriptionOut,
             responses=error_responses(*BODY_ERRORS, 404, 409, 422, s409=TOO_MANY,
                                       s404="tenant_not_found: no such tenant",
                                       s422=INVALID_URL),
             summary="Create a subscription",
             description="Subscribe a URL to event types. Its owner is the key that creates "
                         "it; its tenant is the one named (admin) or the key's own. The answer "
                         "holds the signing secret (whsec_…) to verify deliveries with.\n\n"
                         "Roles: admin, subscriber.")
async def create_subscription(
    body: SubscriptionIn, who: SubscriberOrAdmin, store: StoreDep, request: Request
) -> SubscriptionOut:
    fields = body.model_dump()
    fields["tenant_id"] = _tenant_for(who, body.tenant_id)
    _checked_types(who, body.event_types)
    fields["url"] = _checked_url(request, body.url)
    fields["filter"] = _checked_filter(body.filter)
    limit = request.state.settings.max_subscriptions_per_owner
    return SubscriptionOut.of(await store.create_subscription(who.key_id, fields, limit))


@router.post("/filter-test", response_model=FilterTestOut,
             responses=error_responses(*BODY_ERRORS, 422, s422=INVALID_FILTER),
             summary="Try a filter on an event")
async def test_filter(body: FilterTestIn, _: SubscriberOrAdmin) -> FilterTestOut:
    """Whether ``filter`` matches the body a subscriber would receive for ``event`` (its
    type, now as its timestamp, its data). Nothing is stored or sent.

    Roles: admin, subscriber."""
    query = _checked_filter(body.filter)
    if query is None:
        raise ApiError(422, "invalid_filter", "filter: must be a JSON object of field paths "
                                              "and conditions")
    seen = event_body(body.event.type, utcnow(), body.event.data)
    return FilterTestOut(matches=filters.matches(query, seen))


@router.get("", response_model=Listing[SubscriptionOut], responses=error_responses(400, 404),
            summary="List subscriptions",
            description="Subscriptions that are not deleted, newest first. A key scoped to a "
                        "tenant sees its tenant's, another subscriber its own; an admin sees "
                        "all.\n\nRoles: admin, subscriber.")
async def list_subscriptions(
    who: SubscriberOrAdmin, store: StoreDep,
    page: Annotated[PageParams, Depends(page_params("sub"))],
    tenant_id: TenantQuery = None,
) -> dict[str, Any]:
    tenant = who.tenant_filter(query_tenant(tenant_id))
    found = await store.list_subscriptions(who.scope, page.cursor, page.limit, page.order,
                                           tenant_id=tenant)
    return listing(found, SubscriptionOut.of)


@router.get("/{sub_id}", response_model=SubscriptionOut, responses=error_responses(404),
            summary="Get a subscription",
            description="One subscription, with its newest signing secret. Another owner's "
                        "answers 404.\n\nRoles: admin, subscriber.")
async def get_subscription(
    sub_id: SubId, who: SubscriberOrAdmin, store: StoreDep
) -> SubscriptionOut:
    return SubscriptionOut.of(await store.get_subscription(sub_id, who.scope))


@router.patch("/{sub_id}", response_model=SubscriptionOut,
              responses=error_responses(*BODY_ERRORS, 404, 422, s422=INVALID_URL),
              summary="Change a subscription")
async def update_subscription(
    sub_id: SubId, body: SubscriptionPatch, who: SubscriberOrAdmin, store: StoreDep,
    request: Request,
) -> SubscriptionOut:
    """Change the fields given; the others stay. ``{"enabled": true}`` re-enables it and
    releases its held deliveries, oldest first; ``{"enabled": false}`` holds new ones.

    Roles: admin, subscriber."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    for name in NOT_NULL:
        if name in changes and changes[name] is None:
            raise ApiError(422, "validation_error", f"{name}: may not be null")
    if "secret" in changes and changes["secret"] is None:
        raise ApiError(422, "validation_error", "secret: may not be null; use rotate-secret")
    if "description" in changes and changes["description"] is None:
        changes["description"] = ""
    if "url" in changes:
        changes["url"] = _checked_url(request, changes["url"])
    if "filter" in changes:
        changes["filter"] = _checked_filter(changes["filter"])
    _checked_types(who, changes.get("event_types"))
    return SubscriptionOut.of(await store.update_subscription(sub_id, who.scope, changes))


@router.delete("/{sub_id}", status_code=204, responses=error_responses(404),
               summary="Delete a subscription")
async def delete_subscription(sub_id: SubId, who: SubscriberOrAdmin, store: StoreDep) -> Response:
    """Delete it; its open deliveries become ``cancelled``, history is kept.

    Roles: admin, subscriber."""
    await store.delete_subscription(sub_id, who.scope)
    return Response(status_code=204)


@router.post("/{sub_id}/rotate-secret", response_model=SubscriptionOut,
             responses=error_responses(*BODY_ERRORS, 404, 422), summary="Rotate the secret")
async def rotate_secret(
    sub_id: SubId, who: SubscriberOrAdmin, store: StoreDep,
    body: Annotated[RotateIn | None, Body()] = None,
) -> SubscriptionOut:
    """A new signing secret; the old one keeps signing too for ``grace_period_seconds``, so
    requests carry one signature per valid secret meanwhile. The body is optional.

    Roles: admin, subscriber."""
    body = body or RotateIn()
    row = await store.rotate_secret(
        sub_id, who.scope, body.grace_period_seconds, body.secret
    )
    return SubscriptionOut.of(row)


@router.post("/{sub_id}/recover", status_code=202, response_model=Replayed,
             responses=error_responses(*BODY_ERRORS, 404, 422),
             summary="Recover a subscription's failures")
async def recover_subscription(
    sub_id: SubId, body: RecoverIn, _: Admin, store: StoreDep
) -> Replayed:
    """Send again every ``failed`` delivery of this subscription created in the window
    (``since`` inclusive, ``until`` exclusive, default now), each with a fresh retry budget.

    Roles: admin."""
    await store.get_subscription(sub_id, None)
    window = DeliveryFilter(status=DeliveryStatus.FAILED, subscription_id=sub_id, since=body.since,
                            until=body.until or utcnow())
    return Replayed(replayed=await store.replay(window))


@router.post("/{sub_id}/test", response_model=TestOut,
             responses=error_responses(*BODY_ERRORS, 404, 422), summary="Send a test request")
async def test_subscription(
    sub_id: SubId, who: SubscriberOrAdmin, store: StoreDep, request: Request,
    body: Annotated[TestIn | None, Body()] = None,
) -> TestOut:
    """Send one signed request now, through the shared client, and report the answer.

    It creates no event and no delivery. The body is optional.

    Roles: admin, subscriber.
    """
    body = body or TestIn()
    sub = await store.get_subscription(sub_id, who.scope)
    result = await send_test(request.state.http_client, request.state.settings, sub,
                             body.type, body.data)
    return TestOut(**asdict(result))

