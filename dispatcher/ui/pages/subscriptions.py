"""Subscriptions: the list, one subscription's page, enable/disable, rotate, test send, its
delivery options (retry schedule, attempt deadline)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from ...api.messages import explain
from ...api.schemas import SubscriptionPatch
from ...clock import utcnow
from ...event_types import is_valid_type
from ...health import Rate
from ...probe import send_test
from ...store import Store
from .overview import health_of, rates_of
from .site import (
    PAGE_SIZE,
    Admin,
    PageError,
    audit,
    cursor_of,
    form_of,
    found,
    path_id,
    render,
    router,
    store_of,
    tenant_param,
)


async def health_context(store: Store, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a table of subscriptions shows beside each: its health, success rate, last
    success and tenant (the template's ``subscription_table.html``)."""
    # Looked up for healthy ones only: a failing one's last success is before its streak.
    last = await store.last_successes([r["id"] for r in rows if r["failing_since"] is None])
    now = utcnow()
    rates = await rates_of(store, now, [r["id"] for r in rows])
    states = {r["id"]: health_of(r, rates, now) for r in rows}
    return {"last": last, "states": states,
            "rates": {r["id"]: rates.get(r["id"], Rate()) for r in rows},
            "tenants": await store.tenant_names([r["tenant_id"] for r in rows])}


GRACE_RULE = "The grace period is a number of hours from 0 to 720."


def grace_hours(fields: dict[str, str]) -> float | None:
    """A rotate form's grace period in hours (default 24); None when it is not 0 to 720."""
    try:
        hours = float(fields.get("grace_hours") or 24)
    except ValueError:
        return None
    return hours if 0 <= hours <= 720 else None


def test_request(fields: dict[str, str]) -> tuple[str, Any, str | None]:
    """A test-send form's event type and data, and what is wrong with them (None: nothing)."""
    event_type = fields.get("type") or "dispatcher.test"
    try:
        data = json.loads(fields.get("data") or "{}")
    except ValueError:
        return event_type, None, "The data is not valid JSON."
    if not isinstance(data, dict):
        return event_type, data, "The data must be a JSON object."
    if len(event_type) > 128 or not is_valid_type(event_type):
        return event_type, data, ("The type is letters, digits and _ in dot-separated parts "
                                  "(at most 128).")
    return event_type, data, None


def delivery_options(fields: dict[str, str]) -> dict[str, Any]:
    """A form's ``retry_schedule`` (delays in seconds, separated by commas or spaces) and
    ``timeout_seconds``, checked as the API checks them; blank: the global one (None).
    ValueError says what is wrong, in the API's words."""
    delays = fields.get("retry_schedule", "").replace(",", " ").split()
    timeout = fields.get("timeout_seconds", "").strip()
    try:
        options = {"retry_schedule": [float(d) for d in delays] or None,
                   "timeout_seconds": int(timeout) if timeout else None}
    except ValueError:
        raise ValueError("retry_schedule: write delays in seconds, like 10, 60, 600; "
                         "timeout_seconds: a whole number of seconds") from None
    try:
        return SubscriptionPatch.model_validate(options).model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise ValueError(explain(exc.errors(include_url=False))) from None


@router.get("/subscriptions")
async def subscriptions(request: Request, session: Admin) -> Response:
    params = dict(request.query_params)
    try:
        tenant_id = tenant_param(params.get("tenant_id"))
        cursor = cursor_of(params.get("cursor"), "sub")
    except PageError as exc:
        return render(request, "subscriptions.html", status=exc.status, session=session,
                      error=exc.message, raw=params, rows=[], tenant_id=None, tenants={},
                      next_href=None)
    store = store_of(request)
    page = await store.list_subscriptions(None, cursor, PAGE_SIZE, "desc", tenant_id=tenant_id)
    context = await health_context(store, page.rows)
    if tenant_id is not None:
        context["tenants"] |= await store.tenant_names([tenant_id])
    more = urlencode({k: v for k, v in (("tenant_id", tenant_id),
                                        ("cursor", page.next_cursor)) if v})
    return render(request, "subscriptions.html", session=session, raw=params, rows=page.rows,
                  tenant_id=tenant_id, next_href=f"/ui/subscriptions?{more}"
                  if page.next_cursor else None, **context)


async def _subscription_page(request: Request, session: Admin, sub_id: str,
                             status: int = 200, sub: dict[str, Any] | None = None,
                             **context: Any) -> Response:
    """``sub``: the row, when the caller has just read or changed it."""
    store = store_of(request)
    if sub is None:
        sub = await found(store.get_subscription(path_id(sub_id, "sub"), None))
    recent = await store.list_deliveries(None, subscription_id=sub_id, limit=20)
    last = await store.last_successes([sub_id])
    now = utcnow()
    rates = await rates_of(store, now, [sub_id])
    tenants = await store.tenant_names([sub["tenant_id"]])
    settings = request.state.settings
    return render(request, "subscription.html", status=status, session=session, sub=sub,
                  tenants=tenants, global_schedule=settings.retry_schedule,
                  global_timeout=settings.delivery_timeout_seconds,
                  recent=recent.rows, last_success=last.get(sub_id),
                  health=health_of(sub, rates, now), rate=rates.get(sub_id, Rate()),
                  **context)


@router.get("/subscriptions/{sub_id}")
async def subscription(request: Request, session: Admin, sub_id: str) -> Response:
    return await _subscription_page(request, session, sub_id)


@router.post("/subscriptions/{sub_id}/enabled")
async def set_enabled(request: Request, session: Admin, sub_id: str) -> Response:
    fields = await form_of(request, session)
    if fields.get("enabled") not in ("true", "false"):
        raise PageError(400, "enabled must be true or false.")
    enabled = fields["enabled"] == "true"
    await found(store_of(request).update_subscription(path_id(sub_id, "sub"), None,
                                                      {"enabled": enabled}))
    done = "enabled" if enabled else "disabled"
    audit.info("dashboard: subscription %s", done,
               extra={"key_id": session.key_id, "subscription_id": sub_id})
    return RedirectResponse(f"/ui/subscriptions/{sub_id}?done={done}", status_code=303)


@router.post("/subscriptions/{sub_id}/rotate")
async def rotate(request: Request, session: Admin, sub_id: str) -> Response:
    fields = await form_of(request, session)
    hours = grace_hours(fields)
    if hours is None:
        return await _subscription_page(request, session, sub_id, status=400,
                                        rotate_error=GRACE_RULE)
    row = await found(store_of(request).rotate_secret(path_id(sub_id, "sub"), None,
                                                      hours * 3600, None))
    audit.info("dashboard: signing secret rotated (grace %g h)", hours,
               extra={"key_id": session.key_id, "subscription_id": sub_id})
    return await _subscription_page(request, session, sub_id, sub=row,
                                    new_secret=row["secrets"][0], grace_hours=hours)


@router.post("/subscriptions/{sub_id}/test")
async def test_event(request: Request, session: Admin, sub_id: str) -> Response:
    fields = await form_of(request, session)
    event_type, data, problem = test_request(fields)
    if problem is not None:
        return await _subscription_page(request, session, sub_id, status=400,
                                        test_error=problem, test_type=event_type,
                                        test_data=fields.get("data", ""))
    sub = await found(store_of(request).get_subscription(path_id(sub_id, "sub"), None))
    result = await send_test(request.state.http_client, request.state.settings, sub,
                             event_type, data)
    audit.info("dashboard: test event sent", extra={
        "key_id": session.key_id, "subscription_id": sub_id, "status_code": result.status_code,
        "duration_ms": result.duration_ms, "outcome": result.outcome})
    return await _subscription_page(request, session, sub_id, sub=sub, test_result=result,
                                    test_type=event_type, test_data=fields.get("data", ""))


@router.post("/subscriptions/{sub_id}/options")
async def set_options(request: Request, session: Admin, sub_id: str) -> Response:
    fields = await form_of(request, session)
    try:
        options = delivery_options(fields)
    except ValueError as exc:
        return await _subscription_page(request, session, sub_id, status=400,
                                        options_error=str(exc), options_form=fields)
    await found(store_of(request).update_subscription(path_id(sub_id, "sub"), None, options))
    audit.info("dashboard: delivery options changed", extra={
        "key_id": session.key_id, "subscription_id": sub_id, **options})
    return RedirectResponse(f"/ui/subscriptions/{sub_id}?done=options", status_code=303)
