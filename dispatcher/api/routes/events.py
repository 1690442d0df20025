from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import Response

from ... import event_types, metrics
from ...event_types import RESERVED_PREFIX, is_reserved
from ...store import IdempotencyKeyReused, KeyDeleted
from ..auth import DELETED_KEY, Admin, IngestPublisher, Publisher, StoreDep
from ..errors import BODY_ERRORS, ApiError, error_responses
from ..paging import (
    PageParams,
    TenantQuery,
    listing,
    page_params,
    path_id,
    query_tenant,
    query_time,
)
from ..query import StrictQueryRoute
from ..schemas import (
    DeliveryOut,
    EventAccepted,
    EventIn,
    EventOut,
    EventReplayed,
    EventReplayIn,
    Listing,
)

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=StrictQueryRoute)
log = logging.getLogger("dispatcher.api")
EventId = Annotated[str, path_id("evt")]


def _event_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "created_at": row["created_at"],
        "data": json.loads(row["payload"])["data"],
        "tenant_id": row["tenant_id"],
        "broadcast": bool(row["broadcast"]),
    }


@router.post(
    "",
    status_code=202,
    response_model=EventAccepted,
    summary="Publish an event",
    responses={
        200: {"model": EventAccepted, "description": "a repeated Idempotency-Key"},
        **error_responses(
            *BODY_ERRORS, 422, s422="validation_error: a body field is missing, of the wrong "
            "type, unknown or invalid (or tenant_id with broadcast); reserved_event_type: "
            "a dispatcher.… type; schema_mismatch: data does not match the type's schema "
            "in the catalog (the place is named); unknown_event_type: a type not in the "
            "catalog, with DISPATCHER_REQUIRE_EVENT_TYPES; or "
            "idempotency_key_reused: the Idempotency-Key came with another type, data or "
            "tenant before (nothing is created)"),
    },
)
async def post_event(
    body: EventIn, who: IngestPublisher, request: Request,
    idempotency_key: Annotated[str | None, Header(
        max_length=255, examples=["order-1234-paid"],
        description="at most 255 characters; a repeat within 24 h (per key) makes no new "
                    "event and answers 200 with the first one")] = None,
) -> Response:
    """Accept an event for every subscription whose ``event_types`` match its type: of the
    tenant ``tenant_id``, or (left out) of no tenant, or with ``broadcast`` of every tenant
    and of none. The event and its deliveries are committed before this answers 202;
    delivery starts at once.

    Roles: admin, publisher."""
    if is_reserved(body.type):
        raise ApiError(422, "reserved_event_type", f"type: {RESERVED_PREFIX}… types are "
                       "dispatcher's own operational events; publishers may not post them")
    # The hot path: the store from request.state, not one more dependency (StoreDep).
    state = request.state
    known = await state.store.catalog.current()
    if (refused := known.refusal(body.type, body.data,
                                 state.settings.require_event_types)) is not None:
        raise ApiError(422, *refused)
    try:
        event, created = await state.store.accept_event(
            who.key_id, body.type, body.data, idempotency_key or None,
            state.settings.idempotency_ttl_seconds, check_key=True,
            tenant_id=body.tenant_id, broadcast=body.broadcast,
        )
    except KeyDeleted:
        raise ApiError(401, "unauthorized", DELETED_KEY) from None
    except IdempotencyKeyReused:
        raise ApiError(422, "idempotency_key_reused",
                       "this Idempotency-Key was used for an event with another type, data, "
                       "tenant_id or broadcast; send a new key for a new event") from None
    if created:
        metrics.count_event(event["deliveries"])
        if log.isEnabledFor(logging.DEBUG):
            log.debug("event accepted", extra={"event_id": event["id"],
                                               "deliveries": event["deliveries"]})
    return Response(EventAccepted.model_validate(event).model_dump_json(),
                    status_code=202 if created else 200, media_type="application/json")


@router.get("", response_model=Listing[EventOut], responses=error_responses(400),
            summary="List events",
            description="Events, newest first, a page at a time. A publisher sees the events "
                        "it sent; an admin sees all.\n\nRoles: admin, publisher.")
async def list_events(
    who: Publisher, store: StoreDep,
    page: Annotated[PageParams, Depends(page_params("evt"))],
    type: Annotated[str | None, Query(
        max_length=128, json_schema_extra={"pattern": event_types.TYPE_PATTERN.pattern},
        description="only events of exactly this type", examples=["invoice.paid"],
    )] = None,
    after: Annotated[datetime | None, Query(
        description="only events created after this time (exclusive)")] = None,
    before: Annotated[datetime | None, Query(
        description="only events created before this time (exclusive)")] = None,
    tenant_id: TenantQuery = None,
) -> dict[str, Any]:
    if type is not None and not event_types.is_valid_type(type):
        raise ApiError(400, "invalid_parameter", "type is not a valid event type name")
    found = await store.list_events(
        who.owner_filter, type, query_time(after, "after"), query_time(before, "before"),
        page.cursor, page.limit, page.order, tenant_id=query_tenant(tenant_id),
    )
    return listing(found, _event_out)


@router.get("/{event_id}", response_model=EventOut, responses=error_responses(404),
            summary="Get an event",
            description="One event with its data. A publisher sees only the events it "
                        "sent.\n\nRoles: admin, publisher.")
async def get_event(event_id: EventId, who: Publisher, store: StoreDep) -> dict[str, Any]:
    return _event_out(await store.get_event(event_id, who.owner_filter))


@router.get("/{event_id}/deliveries", response_model=Listing[DeliveryOut],
            responses=error_responses(400, 404), summary="List an event's deliveries",
            description="Its deliveries, one per subscription it went to, so a publisher can "
                        "see whether what it sent arrived.\n\nRoles: admin, publisher.")
async def event_deliveries(
    event_id: EventId, who: Publisher, store: StoreDep,
    page: Annotated[PageParams, Depends(page_params("dlv"))],
) -> dict[str, Any]:
    await store.get_event(event_id, who.owner_filter)
    found = await store.list_deliveries(
        None, event_id=event_id, cursor=page.cursor, limit=page.limit, order=page.order
    )
    return listing(found, lambda r: r)


@router.post(
    "/{event_id}/replay", status_code=202, response_model=EventReplayed,
    summary="Deliver an event again",
    responses=error_responses(
        *BODY_ERRORS, 404, 422, s404="not_found: no such event, or no such subscription"),
)
async def replay_event(
    event_id: EventId, _: Admin, store: StoreDep,
    body: Annotated[EventReplayIn | None, Body()] = None,
) -> EventReplayed:
    """New deliveries of this event: to ``subscription_ids``, or (omitted) to every
    subscription of its tenant (or of none, or of all for a broadcast) that matches it now.
    Unknown or deleted subscriptions answer 404, another tenant's 422 ``tenant_mismatch``.
    Its old deliveries keep their history.

    Roles: admin."""
    chosen = body.subscription_ids if body is not None else None
    return EventReplayed(deliveries=await store.replay_event(event_id, chosen))
