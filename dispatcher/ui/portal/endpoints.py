"""A tenant's endpoints (its subscriptions, in the customer's word): the list with health,
create, edit, enable/disable, delete, rotate the secret, send a test, recover failures."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from ...api.messages import explain
from ...api.schemas import SubscriptionIn, SubscriptionPatch
from ...clock import utcnow
from ...probe import send_test
from ...store import Conflict, DeliveryFilter, Store
from ...targets import InvalidTarget, check_url, guard_for
from ...vocabulary import DeliveryStatus
from ..pages.deliveries import parse_time
from ..pages.site import PageError, found, path_id, store_of
from ..pages.subscriptions import (
    GRACE_RULE,
    delivery_options,
    grace_hours,
    health_context,
    test_request,
)
from .site import Customer, Visit, change_of, log_change, may_change, render, router

TYPE_FIELD = "t."  # a checked event type of the form: t.<type>=on


def parse_headers(text: str) -> dict[str, str]:
    """``Name: value`` lines (blank lines skipped) as a header mapping."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"headers: write each as Name: value ({line.strip()[:40]!r} "
                             "has no ':')")
        headers[name.strip()] = value.strip()
    return headers


def endpoint_fields(form: dict[str, str]) -> dict[str, Any]:
    """The fields a create or edit form gives, as the API's body would have them."""
    types = [name[len(TYPE_FIELD):] for name, value in form.items()
             if name.startswith(TYPE_FIELD) and value]
    types += [t for t in form.get("event_types", "").replace(",", " ").split() if t]
    return {"url": form.get("url", "").strip(),
            "event_types": list(dict.fromkeys(types)) or ["*"],
            "description": form.get("description", "").strip(),
            "headers": parse_headers(form.get("headers", "")),
            **delivery_options(form)}


def checked(request: Request, fields: dict[str, Any], model: type[Any]) -> dict[str, Any]:
    """``fields`` as the API checks them (``model``), URL included; PageError 400 saying
    what is wrong, in the API's words."""
    try:
        body: dict[str, Any] = model.model_validate(fields).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise PageError(400, explain(exc.errors(include_url=False))) from None
    try:
        body["url"] = check_url(body["url"], guard_for(request.state.settings))
    except InvalidTarget as exc:
        raise PageError(400, f"url: {exc}") from None
    return body


async def offered_types(store: Store, visit: Visit) -> list[str]:
    """The event types a form offers: the catalog's (but deprecated ones), then those this
    tenant's deliveries carried lately."""
    catalogued = await store.event_type_names()
    return catalogued + [t for t in await store.recent_event_types(visit.tenant_id)
                         if t not in catalogued]


async def endpoint_of(store: Store, visit: Visit, sub_id: str) -> dict[str, Any]:
    """The visit's tenant's subscription ``sub_id``; the 404 page for any other."""
    return await found(store.get_subscription(path_id(sub_id, "sub"), visit.scope))


@router.get("")
async def endpoints(request: Request, visit: Customer) -> Response:
    store = store_of(request)
    page = await store.list_subscriptions(visit.scope, None, 200, "desc")
    context = await health_context(store, page.rows)
    return render(request, "portal/endpoints.html", visit, rows=page.rows,
                  more=page.next_cursor is not None, **context)


async def _form_page(request: Request, visit: Visit, sub: dict[str, Any] | None,
                     status: int = 200, **context: Any) -> Response:
    offered = await offered_types(store_of(request), visit)
    if sub is not None:  # its own types are offered too, checked
        offered += [t for t in sub["event_types"] if t not in offered]
    return render(request, "portal/endpoint_form.html", visit, status=status, sub=sub,
                  offered=offered,
                  global_timeout=request.state.settings.delivery_timeout_seconds, **context)


@router.get("/endpoints/new")
async def new_endpoint(request: Request, visit: Customer) -> Response:
    may_change(visit)
    return await _form_page(request, visit, None)


@router.post("/endpoints")
async def create_endpoint(request: Request, visit: Customer) -> Response:
    form = await change_of(request, visit)
    try:
        body = checked(request, endpoint_fields(form), SubscriptionIn)
        body["tenant_id"] = visit.tenant_id
        limit = request.state.settings.max_subscriptions_per_owner
        sub = await store_of(request).create_subscription(visit.link.id, body, limit)
    except (PageError, ValueError, Conflict) as exc:
        status = exc.status if isinstance(exc, PageError) else 400
        message = exc.message if isinstance(exc, PageError | Conflict) else str(exc)
        return await _form_page(request, visit, None, status=status, error=message, form=form)
    log_change(visit, "endpoint created", subscription_id=sub["id"])
    # Its secret, shown once, on its own page.
    return await _endpoint_page(request, visit, sub["id"], sub=sub,
                                new_secret=sub["secrets"][0], created=True)


async def _endpoint_page(request: Request, visit: Visit, sub_id: str, status: int = 200,
                         sub: dict[str, Any] | None = None, **context: Any) -> Response:
    store = store_of(request)
    if sub is None:
        sub = await endpoint_of(store, visit, sub_id)
    recent = await store.list_deliveries(visit.scope, subscription_id=sub["id"], limit=20)
    health = await health_context(store, [sub])
    return render(request, "portal/endpoint.html", visit, status=status, sub=sub,
                  global_timeout=request.state.settings.delivery_timeout_seconds,
                  recent=recent.rows, health=health["states"][sub["id"]],
                  rate=health["rates"][sub["id"]], last_success=health["last"].get(sub["id"]),
                  **context)


@router.get("/endpoints/{sub_id}")
async def endpoint(request: Request, visit: Customer, sub_id: str) -> Response:
    return await _endpoint_page(request, visit, sub_id)


@router.get("/endpoints/{sub_id}/edit")
async def edit_endpoint(request: Request, visit: Customer, sub_id: str) -> Response:
    may_change(visit)
    sub = await endpoint_of(store_of(request), visit, sub_id)
    return await _form_page(request, visit, sub)


@router.post("/endpoints/{sub_id}")
async def update_endpoint(request: Request, visit: Customer, sub_id: str) -> Response:
    form = await change_of(request, visit)
    store = store_of(request)
    sub = await endpoint_of(store, visit, sub_id)
    try:
        changes = checked(request, endpoint_fields(form), SubscriptionPatch)
    except (PageError, ValueError) as exc:
        status = exc.status if isinstance(exc, PageError) else 400
        message = exc.message if isinstance(exc, PageError) else str(exc)
        return await _form_page(request, visit, sub, status=status, error=message, form=form)
    await found(store.update_subscription(sub_id, visit.scope, changes))
    log_change(visit, "endpoint changed", subscription_id=sub_id)
    return RedirectResponse(f"/portal/endpoints/{sub_id}?done=saved", status_code=303)


@router.post("/endpoints/{sub_id}/enabled")
async def set_enabled(request: Request, visit: Customer, sub_id: str) -> Response:
    form = await change_of(request, visit)
    if form.get("enabled") not in ("true", "false"):
        raise PageError(400, "enabled must be true or false.")
    enabled = form["enabled"] == "true"
    await found(store_of(request).update_subscription(path_id(sub_id, "sub"), visit.scope,
                                                      {"enabled": enabled}))
    done = "enabled" if enabled else "disabled"
    log_change(visit, f"endpoint {done}", subscription_id=sub_id)
    return RedirectResponse(f"/portal/endpoints/{sub_id}?done={done}", status_code=303)


@router.get("/endpoints/{sub_id}/delete")
async def confirm_delete(request: Request, visit: Customer, sub_id: str) -> Response:
    may_change(visit)
    sub = await endpoint_of(store_of(request), visit, sub_id)
    return render(request, "portal/endpoint_delete.html", visit, sub=sub)


@router.post("/endpoints/{sub_id}/delete")
async def delete_endpoint(request: Request, visit: Customer, sub_id: str) -> Response:
    await change_of(request, visit)
    await found(store_of(request).delete_subscription(path_id(sub_id, "sub"), visit.scope))
    log_change(visit, "endpoint deleted", subscription_id=sub_id)
    return RedirectResponse("/portal?done=deleted", status_code=303)


@router.post("/endpoints/{sub_id}/rotate")
async def rotate(request: Request, visit: Customer, sub_id: str) -> Response:
    form = await change_of(request, visit)
    hours = grace_hours(form)
    if hours is None:
        return await _endpoint_page(request, visit, sub_id, status=400,
                                    rotate_error=GRACE_RULE)
    row = await found(store_of(request).rotate_secret(path_id(sub_id, "sub"), visit.scope,
                                                      hours * 3600, None))
    log_change(visit, "signing secret rotated", subscription_id=sub_id)
    return await _endpoint_page(request, visit, sub_id, sub=row,
                                new_secret=row["secrets"][0], grace_hours=hours)


@router.post("/endpoints/{sub_id}/test")
async def test_event(request: Request, visit: Customer, sub_id: str) -> Response:
    form = await change_of(request, visit)
    event_type, data, problem = test_request(form)
    if problem is not None:
        return await _endpoint_page(request, visit, sub_id, status=400, test_error=problem,
                                    test_type=event_type, test_data=form.get("data", ""))
    sub = await endpoint_of(store_of(request), visit, sub_id)
    result = await send_test(request.state.http_client, request.state.settings, sub,
                             event_type, data)
    log_change(visit, "test event sent", subscription_id=sub_id,
               status_code=result.status_code, outcome=result.outcome)
    return await _endpoint_page(request, visit, sub_id, sub=sub, test_result=result,
                                test_type=event_type, test_data=form.get("data", ""))


def _recovery(visit: Visit, sub_id: str, form: dict[str, str]) -> DeliveryFilter:
    since = parse_time(form.get("since"), "since")
    if since is None:
        raise PageError(400, "since: give the date and time to recover from, like "
                             "2026-12-01 13:00 (UTC, 24-hour clock).")
    until = parse_time(form.get("until"), "until") or utcnow()
    return DeliveryFilter(status=DeliveryStatus.FAILED, subscription_id=sub_id,
                          tenant_id=visit.tenant_id, since=since, until=until)


@router.post("/endpoints/{sub_id}/recover")
async def confirm_recover(request: Request, visit: Customer, sub_id: str) -> Response:
    """The count first: what would be sent again, and a form to confirm it."""
    form = await change_of(request, visit)
    store = store_of(request)
    sub = await endpoint_of(store, visit, sub_id)
    try:
        window = _recovery(visit, sub["id"], form)
    except PageError as exc:
        return await _endpoint_page(request, visit, sub_id, status=exc.status, sub=sub,
                                    recover_error=exc.message, since=form.get("since", ""))
    count = await store.count_replayable(window)
    return render(request, "portal/recover.html", visit, sub=sub, window=window, count=count)


@router.post("/endpoints/{sub_id}/recover/confirm")
async def recover(request: Request, visit: Customer, sub_id: str) -> Response:
    form = await change_of(request, visit)
    store = store_of(request)
    sub = await endpoint_of(store, visit, sub_id)
    window = _recovery(visit, sub["id"], form)
    replayed = await store.replay(window)
    log_change(visit, "failed deliveries recovered", subscription_id=sub_id,
               replayed=replayed)
    return await _endpoint_page(request, visit, sub_id, recovered=replayed)
