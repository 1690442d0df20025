from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from ...store import DeliveryFilter
from ..auth import Admin, StoreDep, SubscriberOrAdmin
from ..errors import BODY_ERRORS, error_responses
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
    EXAMPLE_TYPE,
    ID_EXAMPLES,
    NO_NUL,
    AttemptOut,
    DeliveryOut,
    Listing,
    Replayed,
    ReplayIn,
    Status,
)

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"], route_class=StrictQueryRoute)
DeliveryId = Annotated[str, path_id("dlv")]


@router.get("", response_model=Listing[DeliveryOut], responses=error_responses(400, 404),
            summary="List deliveries",
            description="Deliveries, newest first, filtered. A subscriber sees those of its "
                        "subscriptions; an admin sees all.\n\nRoles: admin, subscriber.")
async def list_deliveries(
    who: SubscriberOrAdmin, store: StoreDep,
    page: Annotated[PageParams, Depends(page_params("dlv"))],
    status: Annotated[Status | None, Query(description="only deliveries in this status")] = None,
    subscription_id: Annotated[str | None, Query(
        max_length=40, pattern=NO_NUL, description="only this subscription's deliveries",
        examples=[ID_EXAMPLES["sub"]])] = None,
    event_type: Annotated[str | None, Query(
        max_length=128, pattern=NO_NUL, description="only deliveries of events of this type",
        examples=[EXAMPLE_TYPE])] = None,
    since: Annotated[datetime | None, Query(
        description="created at or after this time (a time without a zone is UTC)")] = None,
    until: Annotated[datetime | None, Query(
        description="created before this time (a time without a zone is UTC)")] = None,
    tenant_id: TenantQuery = None,
) -> dict[str, Any]:
    found = await store.list_deliveries(
        who.scope, status=status, subscription_id=subscription_id,
        tenant_id=who.tenant_filter(query_tenant(tenant_id)),
        event_type=event_type, since=query_time(since, "since"), until=query_time(until, "until"),
        cursor=page.cursor, limit=page.limit, order=page.order,
    )
    return listing(found, lambda r: r)


@router.post("/replay", status_code=202, response_model=Replayed,
             responses=error_responses(*BODY_ERRORS, 422), summary="Replay deliveries")
async def replay_deliveries(body: ReplayIn, _: Admin, store: StoreDep) -> Replayed:
    """Send every matching delivery again with a fresh retry budget (trigger ``replay``).

    Works through the matches in batches; deliveries of disabled subscriptions become
    ``held``, those of deleted subscriptions are left alone. The answer comes when all are
    queued.

    Roles: admin.
    """
    count = await store.replay(DeliveryFilter(**body.model_dump()))
    return Replayed(replayed=count)


@router.get("/{delivery_id}", response_model=DeliveryOut, responses=error_responses(404),
            summary="Get a delivery",
            description="One delivery and its state. A subscriber sees only those of its "
                        "subscriptions.\n\nRoles: admin, subscriber.")
async def get_delivery(
    delivery_id: DeliveryId, who: SubscriberOrAdmin, store: StoreDep,
) -> dict[str, Any]:
    return await store.get_delivery(delivery_id, who.scope)


@router.get("/{delivery_id}/attempts", response_model=Listing[AttemptOut],
            responses=error_responses(400, 404), summary="List a delivery's attempts",
            description="Every attempt of one delivery, with the receiver's status, the first "
                        "4 KiB of its answer and how long it took.\n\n"
                        "Roles: admin, subscriber.")
async def list_attempts(
    delivery_id: DeliveryId, who: SubscriberOrAdmin, store: StoreDep,
    page: Annotated[PageParams, Depends(page_params("att"))],
) -> dict[str, Any]:
    found = await store.list_attempts(
        delivery_id, who.scope, page.cursor, page.limit, page.order
    )
    return listing(found, lambda r: r)


@router.post(
    "/{delivery_id}/retry", status_code=202, response_model=DeliveryOut,
    summary="Retry a delivery now",
    responses=error_responses(
        *BODY_ERRORS, 404, 409,
        s409="attempt_in_progress, or subscription_deleted: its subscription was deleted"),
)
async def retry_delivery(
    delivery_id: DeliveryId, who: SubscriberOrAdmin, store: StoreDep,
) -> dict[str, Any]:
    """One more attempt now (trigger ``manual``), whatever the status. A success makes it
    ``succeeded``; a failure of a ``pending`` delivery continues its schedule.

    Roles: admin, subscriber."""
    return await store.retry_now(delivery_id, who.scope)
