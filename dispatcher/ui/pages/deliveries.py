"""Deliveries: the filtered list, one delivery with its attempts, retry now; an event."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from ... import ids
from ...clock import as_utc, utcnow
from ...store import Conflict, Scope, Store
from ...vocabulary import DeliveryStatus
from ..session import Session
from .site import (
    PAGE_SIZE,
    Admin,
    PageError,
    audit,
    cursor_of,
    form_of,
    found,
    path_id,
    pretty_payload,
    render,
    router,
    store_of,
    tenant_param,
)

STATUSES = tuple(DeliveryStatus)
EVENT_DELIVERIES = 200  # listed on an event's page


def parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:  # also takes "2026-12-01 13:00", "2026-12-01T13:00:00" and "2026-12-01"
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PageError(400, f"{name}: give a date and time like 2026-12-01 13:00 "
                             "(UTC, 24-hour clock).") from None
    return as_utc(parsed)


def delivery_filters(params: dict[str, str]) -> dict[str, Any]:
    """The deliveries page's filters from its query (or a posted form), checked."""
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise PageError(400, f"status is one of {', '.join(STATUSES)}.")
    sub_id = params.get("subscription_id", "").strip() or None
    if sub_id is not None and not ids.is_id(sub_id, "sub"):
        raise PageError(400, "subscription_id is a sub_… id.")
    event_type = params.get("event_type", "").strip() or None
    if event_type is not None and len(event_type) > 128:
        raise PageError(400, "event_type is at most 128 characters.")
    return {"status": status, "subscription_id": sub_id, "event_type": event_type,
            "tenant_id": tenant_param(params.get("tenant_id")),
            "since": parse_time(params.get("since"), "since"),
            "until": parse_time(params.get("until"), "until")}


def query_of(filters: dict[str, Any], **more: str | None) -> str:
    values = {k: (v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else v)
              for k, v in {**filters, **more}.items() if v}
    return urlencode(values)


@router.get("/deliveries")
async def deliveries(request: Request, session: Admin) -> Response:
    params = dict(request.query_params)
    try:
        filters = delivery_filters(params)
        cursor = cursor_of(params.get("cursor"), "dlv")
    except PageError as exc:
        return render(request, "deliveries.html", status=exc.status, session=session,
                      error=exc.message, filters={}, raw=params, rows=[], statuses=STATUSES,
                      tenants={})
    store = store_of(request)
    page = await store.list_deliveries(None, cursor=cursor, limit=PAGE_SIZE, **filters)
    names = await store.subscription_names(
        [r["subscription_id"] for r in page.rows] + [filters["subscription_id"] or ""])
    tenants = await store.tenant_names([r["tenant_id"] for r in page.rows]
                                       + [filters["tenant_id"]])
    return render(request, "deliveries.html", session=session, filters=filters, raw=params,
                  rows=page.rows, statuses=STATUSES, names=names, tenants=tenants,
                  next_query=query_of(filters, cursor=page.next_cursor) if page.next_cursor
                  else None,
                  replay_query=query_of({**filters, "status": DeliveryStatus.FAILED}))


async def delivery_context(store: Store, delivery_id: str, scope: Scope | None
                           ) -> dict[str, Any]:
    """What a delivery's page shows (the dashboard's and the portal's): the delivery in
    ``scope`` (404 page otherwise), its attempts, its event's body, whether an attempt is
    under way, and its subscription's name."""
    delivery = await found(store.get_delivery(path_id(delivery_id, "dlv"), scope))
    attempts = await store.list_attempts(delivery["id"], scope, None, 500, "asc")
    # The delivery is in scope, so its event's body is what its subscription was sent.
    event = await found(store.get_event(delivery["event_id"], None))
    in_flight = (delivery["status"] == DeliveryStatus.PENDING
                 and delivery["lease_until"] is not None and delivery["lease_until"] > utcnow())
    return {"d": delivery, "attempts": attempts.rows, "in_flight": in_flight,
            "payload": pretty_payload(bytes(event["payload"])),
            "names": await store.subscription_names([delivery["subscription_id"]])}


async def _delivery_page(request: Request, session: Session, delivery_id: str,
                         status: int = 200, **context: Any) -> Response:
    store = store_of(request)
    shown = await delivery_context(store, delivery_id, None)
    tenants = await store.tenant_names([shown["d"]["tenant_id"]])
    return render(request, "delivery.html", status=status, session=session, tenants=tenants,
                  **shown, **context)


@router.get("/deliveries/{delivery_id}")
async def delivery(request: Request, session: Admin, delivery_id: str) -> Response:
    return await _delivery_page(request, session, delivery_id)


@router.post("/deliveries/{delivery_id}/retry")
async def retry(request: Request, session: Admin, delivery_id: str) -> Response:
    await form_of(request, session)
    try:
        await found(store_of(request).retry_now(path_id(delivery_id, "dlv"), None))
    except Conflict as exc:
        return await _delivery_page(request, session, delivery_id, status=409,
                                    error=exc.message)
    audit.info("dashboard: retry now", extra={"key_id": session.key_id,
                                              "delivery_id": delivery_id})
    return RedirectResponse(f"/ui/deliveries/{delivery_id}?done=retry", status_code=303)


@router.get("/events/{event_id}")
async def event(request: Request, session: Admin, event_id: str) -> Response:
    store = store_of(request)
    row = await found(store.get_event(path_id(event_id, "evt"), None))
    try:
        data = json.loads(bytes(row["payload"]))["data"]
        shown = pretty_payload(json.dumps(data).encode())
    except (ValueError, KeyError, TypeError):  # not a body this service wrote: show it all
        shown = pretty_payload(bytes(row["payload"]))
    page = await store.list_deliveries(None, event_id=event_id, limit=EVENT_DELIVERIES,
                                       order="asc")
    names = await store.subscription_names([r["subscription_id"] for r in page.rows])
    tenants = await store.tenant_names([r["tenant_id"] for r in page.rows] + [row["tenant_id"]])
    return render(request, "event.html", session=session, e=row, data=shown,
                  rows=page.rows, more=page.next_cursor is not None, names=names,
                  tenants=tenants)
