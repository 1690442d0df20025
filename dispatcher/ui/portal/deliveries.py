"""A tenant's deliveries: the filtered list, one delivery with every attempt and the
payload, and retry now."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from ...store import Conflict
from ..pages.deliveries import STATUSES, delivery_context, delivery_filters, query_of
from ..pages.site import PAGE_SIZE, PageError, cursor_of, found, path_id, store_of
from .site import Customer, Visit, change_of, log_change, render, router

FILTERS = ("status", "subscription_id", "event_type", "since", "until")


@router.get("/deliveries")
async def deliveries(request: Request, visit: Customer) -> Response:
    # Only the portal's own filters: the tenant is the session's, never the query's.
    params = {k: v for k, v in request.query_params.items() if k in FILTERS or k == "cursor"}
    store = store_of(request)
    endpoints = (await store.list_subscriptions(visit.scope, None, 200, "desc")).rows
    try:
        filters = delivery_filters(params)
        filters.pop("tenant_id")
        cursor = cursor_of(params.get("cursor"), "dlv")
    except PageError as exc:
        return render(request, "portal/deliveries.html", visit, status=exc.status,
                      error=exc.message, raw=params, rows=[], statuses=STATUSES,
                      endpoints=endpoints, names={}, next_query=None)
    if filters["subscription_id"] is not None:  # another tenant's endpoint: not found
        await found(store.get_subscription(filters["subscription_id"], visit.scope))
    page = await store.list_deliveries(visit.scope, cursor=cursor, limit=PAGE_SIZE, **filters)
    names = {s["id"]: s["description"] for s in endpoints}
    return render(request, "portal/deliveries.html", visit, raw=params, rows=page.rows,
                  statuses=STATUSES, endpoints=endpoints, names=names,
                  next_query=query_of(filters, cursor=page.next_cursor) if page.next_cursor
                  else None)


async def _delivery_page(request: Request, visit: Visit, delivery_id: str, status: int = 200,
                         **context: object) -> Response:
    shown = await delivery_context(store_of(request), delivery_id, visit.scope)
    return render(request, "portal/delivery.html", visit, status=status, **shown, **context)


@router.get("/deliveries/{delivery_id}")
async def delivery(request: Request, visit: Customer, delivery_id: str) -> Response:
    return await _delivery_page(request, visit, delivery_id)


@router.post("/deliveries/{delivery_id}/retry")
async def retry(request: Request, visit: Customer, delivery_id: str) -> Response:
    await change_of(request, visit)
    try:
        await found(store_of(request).retry_now(path_id(delivery_id, "dlv"), visit.scope))
    except Conflict as exc:
        return await _delivery_page(request, visit, delivery_id, status=409, error=exc.message)
    log_change(visit, "retry now", delivery_id=delivery_id)
    return RedirectResponse(f"/portal/deliveries/{delivery_id}?done=retry", status_code=303)
