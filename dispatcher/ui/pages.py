"""The operator dashboard (``/ui``): server-rendered pages for holders of an admin key.

Pages read and change through the store, as the API routes do. Every change is a POST of a
form carrying the session's CSRF token (and, when the browser sends one, a same-origin
``Origin``); the session cookie is ``HttpOnly`` and ``SameSite=Strict``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader

from .. import ids
from ..api.routes.subscriptions import send_test
from ..event_types import is_valid_type
from ..health import WINDOW, Health, Rate, health
from ..models import utcnow
from ..store import Conflict, DeliveryFilter, NotFound, Store
from .chart import attempts_chart
from .replays import ReplayJobs
from .session import COOKIE, Session, csrf_ok, key_id_of, make_cookie, open_session

router = APIRouter(prefix="/ui", include_in_schema=False)
# Who did what from the dashboard: one info line per change (key ids, never keys).
audit = logging.getLogger("dispatcher.ui")
T = TypeVar("T")

STATUSES = ("pending", "succeeded", "failed", "held", "cancelled")
PAGE_SIZE = 50
CHART_MINUTES = 60
EVENT_DELIVERIES = 200  # listed on an event's page
UNWELL_SHOWN = 50  # subscriptions listed on the overview, worst first
PAYLOAD_SHOWN = 65536  # characters of a pretty-printed payload shown on a page
OVERVIEW_REFRESH_MS = 10_000
# Worst first on the overview; healthy ones are not listed there.
HEALTH_ORDER = {Health.FAILING: 0, Health.DISABLED: 1, Health.DEGRADED: 2, Health.HEALTHY: 3}
DONE = {
    "retry": "One more attempt is scheduled now.",
    "enabled": "The subscription is enabled; its held deliveries are being sent.",
    "disabled": "The subscription is disabled; new deliveries wait as held.",
}
HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def pretty_payload(payload: bytes, limit: int = PAYLOAD_SHOWN) -> str:
    """An event's body for reading: JSON indented by 2 (as is if it is not JSON), cut at
    ``limit`` characters with a note."""
    text = payload.decode("utf-8", errors="replace")
    try:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    if len(text) > limit:
        text = text[:limit] + f"\n… (the first {limit} characters of {len(text)})"
    return text


def _percent(rate: Rate) -> str:
    ratio = rate.ratio
    if ratio is None:
        return "—"
    # Never "100 %" with a failure, nor "0 %" with a success.
    shown = int(ratio * 100) if ratio < 1 else 100
    return f"{max(shown, 1) if rate.succeeded else shown} %"


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def _ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = (utcnow() - value).total_seconds()
    return f"in {_span(-seconds)}" if seconds < 0 else f"{_span(seconds)} ago"


templates = Environment(
    loader=PackageLoader("dispatcher.ui", "templates"), autoescape=True,
    trim_blocks=True, lstrip_blocks=True,
)
templates.filters.update(when=_when, ago=_ago, span=_span, percent=_percent)


class LoginNeeded(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def render(request: Request, name: str, status: int = 200, session: Session | None = None,
           **context: Any) -> HTMLResponse:
    # After a change, its page is shown again with ?done=<what> (a fixed text, not echoed).
    context.setdefault("done", DONE.get(request.query_params.get("done", "")))
    html = templates.get_template(name).render(
        request=request, session=session, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _store(request: Request) -> Store:
    return request.state.store


async def _found(work: Awaitable[T]) -> T:
    try:
        return await work
    except NotFound as exc:
        raise PageError(404, f"Nothing is called {exc}.") from None


async def current_session(request: Request) -> Session | None:
    cookie = request.cookies.get(COOKIE, "")
    key_id = key_id_of(cookie)
    if key_id is None:
        return None
    key_hash = await _store(request).admin_key_hash(key_id)
    if key_hash is None:  # deleted, or not an admin key
        return None
    return open_session(cookie, key_hash, time.time())


async def need_session(request: Request) -> Session:
    session = await current_session(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginNeeded(target if request.method == "GET" else "/ui")
    return session


Admin = Annotated[Session, Depends(need_session)]


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # older browsers send none on same-origin posts; the token decides
        return True
    return urlsplit(origin).netloc == request.headers.get("host")


async def _fields(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def form_of(request: Request, session: Session) -> dict[str, str]:
    """The posted form, once its CSRF token and origin are checked."""
    fields = await _fields(request)
    if not _same_origin(request) or not csrf_ok(session, fields.get("csrf")):
        raise PageError(403, "This form is out of date or came from another site. "
                             "Reload the page and try again.")
    return fields


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/ui") and not value.startswith("//"):
        return value
    return "/ui"


# ---- log in and out ---------------------------------------------------------------------

@router.get("/login")
async def login_page(request: Request, next: str = "/ui") -> Response:  # noqa: A002
    return render(request, "login.html", next=_safe_next(next))


@router.post("/login")
async def log_in(request: Request) -> Response:
    fields = await _fields(request)
    next_path = _safe_next(fields.get("next"))
    if not _same_origin(request):
        raise PageError(403, "The log-in form came from another site.")
    found = await _store(request).authenticate(fields.get("key", "").strip())
    if found is None or found["role"] != "admin":
        message = ("Unknown or deleted API key." if found is None
                   else "Only admin keys can use the dashboard.")
        audit.warning("dashboard: log-in refused (%s)", "unknown key" if found is None
                      else f"a {found['role']} key", extra={"key_id": found and found["id"]})
        return render(request, "login.html", status=401 if found is None else 403,
                      next=next_path, error=message)
    audit.info("dashboard: logged in", extra={"key_id": found["id"]})
    settings = request.state.settings
    lifetime = int(settings.ui_session_hours * 3600)
    cookie = make_cookie(found["id"], found["key_hash"], int(time.time()) + lifetime)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=lifetime, path="/ui", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def log_out(request: Request, session: Admin) -> Response:
    await form_of(request, session)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# ---- overview ---------------------------------------------------------------------------

async def _rates(store: Store, now: datetime,
                 sub_ids: list[str] | None = None) -> dict[str, Rate]:
    """Each subscription's attempts of the last hour, by outcome."""
    found = await store.attempt_outcomes(now - WINDOW, sub_ids)
    return {sub_id: Rate(n.get("succeeded", 0), n.get("failed", 0))
            for sub_id, n in found.items()}


def _health_of(sub: dict[str, Any], rates: dict[str, Rate], now: datetime) -> Health:
    return health(sub["enabled"], rates.get(sub["id"], Rate()), sub["failing_since"], now)


@router.get("")
async def overview(request: Request, session: Admin) -> Response:
    store = _store(request)
    now = utcnow()
    stats = await store.queue_stats()
    rows = await store.attempts_per_minute(now - timedelta(minutes=CHART_MINUTES))
    rates = await _rates(store, now)
    # Candidates: disabled, in a failure streak, or with failures in the last hour.
    with_failures = sorted((i for i, r in rates.items() if r.failed),
                           key=lambda i: -rates[i].failed)[:UNWELL_SHOWN]
    unwell = []
    for sub in await store.unwell_subscriptions(UNWELL_SHOWN, also=with_failures):
        state = _health_of(sub, rates, now)
        if state is not Health.HEALTHY:
            unwell.append({**sub, "health": state, "rate": rates.get(sub["id"], Rate())})
    unwell.sort(key=lambda s: (HEALTH_ORDER[s["health"]], -s["rate"].failed, s["id"]))
    states = [s["health"] for s in unwell]
    return render(request, "overview.html", session=session, stats=stats,
                  chart=attempts_chart(rows, now, CHART_MINUTES), minutes=CHART_MINUTES,
                  unwell=unwell[:UNWELL_SHOWN], failing=states.count(Health.FAILING),
                  degraded=states.count(Health.DEGRADED), refresh=OVERVIEW_REFRESH_MS, now=now)


# ---- subscriptions ----------------------------------------------------------------------

def _cursor(value: str | None, prefix: str) -> str | None:
    if not value:
        return None
    if not ids.is_id(value, prefix):
        raise PageError(400, "That page link is not valid; start again from the first page.")
    return value


def _path_id(value: str, prefix: str) -> str:
    """An id from the path; one of the wrong shape names nothing (404, as in the API)."""
    if not ids.is_id(value, prefix):
        raise PageError(404, f"Nothing is called {value}.")
    return value


@router.get("/subscriptions")
async def subscriptions(request: Request, session: Admin, cursor: str | None = None) -> Response:
    store = _store(request)
    page = await store.list_subscriptions(None, _cursor(cursor, "sub"), PAGE_SIZE, "desc")
    # Looked up for healthy ones only: a failing one's last success is before its streak.
    last = await store.last_successes(
        [r["id"] for r in page.rows if r["failing_since"] is None])
    now = utcnow()
    rates = await _rates(store, now, [r["id"] for r in page.rows])
    states = {r["id"]: _health_of(r, rates, now) for r in page.rows}
    rates = {r["id"]: rates.get(r["id"], Rate()) for r in page.rows}
    return render(request, "subscriptions.html", session=session, page=page, last=last,
                  rates=rates, states=states)


async def _subscription_page(request: Request, session: Admin, sub_id: str,
                             status: int = 200, sub: dict[str, Any] | None = None,
                             **context: Any) -> Response:
    """``sub``: the row, when the caller has just read or changed it."""
    store = _store(request)
    if sub is None:
        sub = await _found(store.get_subscription(_path_id(sub_id, "sub"), None))
    recent = await store.list_deliveries(None, subscription_id=sub_id, limit=20)
    last = await store.last_successes([sub_id])
    now = utcnow()
    rates = await _rates(store, now, [sub_id])
    return render(request, "subscription.html", status=status, session=session, sub=sub,
                  recent=recent.rows, last_success=last.get(sub_id),
                  health=_health_of(sub, rates, now), rate=rates.get(sub_id, Rate()),
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
    await _found(_store(request).update_subscription(_path_id(sub_id, "sub"), None,
                                                     {"enabled": enabled}))
    done = "enabled" if enabled else "disabled"
    audit.info("dashboard: subscription %s", done,
               extra={"key_id": session.key_id, "subscription_id": sub_id})
    return RedirectResponse(f"/ui/subscriptions/{sub_id}?done={done}", status_code=303)


@router.post("/subscriptions/{sub_id}/rotate")
async def rotate(request: Request, session: Admin, sub_id: str) -> Response:
    fields = await form_of(request, session)
    try:
        hours = float(fields.get("grace_hours") or 24)
    except ValueError:
        hours = -1
    if not 0 <= hours <= 720:
        return await _subscription_page(
            request, session, sub_id, status=400,
            rotate_error="The grace period is a number of hours from 0 to 720.")
    row = await _found(_store(request).rotate_secret(_path_id(sub_id, "sub"), None,
                                                     hours * 3600, None))
    audit.info("dashboard: signing secret rotated (grace %g h)", hours,
               extra={"key_id": session.key_id, "subscription_id": sub_id})
    return await _subscription_page(request, session, sub_id, sub=row,
                                    new_secret=row["secrets"][0], grace_hours=hours)


@router.post("/subscriptions/{sub_id}/test")
async def test_event(request: Request, session: Admin, sub_id: str) -> Response:
    fields = await form_of(request, session)
    event_type = fields.get("type") or "dispatcher.test"
    problem = None
    try:
        data = json.loads(fields.get("data") or "{}")
    except ValueError:
        data, problem = None, "The data is not valid JSON."
    if problem is None and not isinstance(data, dict):
        problem = "The data must be a JSON object."
    if problem is None and (len(event_type) > 128 or not is_valid_type(event_type)):
        problem = "The type is letters, digits and _ in dot-separated parts (at most 128)."
    if problem is not None:
        return await _subscription_page(request, session, sub_id, status=400,
                                        test_error=problem, test_type=event_type,
                                        test_data=fields.get("data", ""))
    sub = await _found(_store(request).get_subscription(_path_id(sub_id, "sub"), None))
    result = await send_test(request.state.http_client, request.state.settings, sub,
                             event_type, data)
    audit.info("dashboard: test event sent", extra={
        "key_id": session.key_id, "subscription_id": sub_id, "status_code": result.status_code,
        "duration_ms": result.duration_ms, "outcome": result.outcome})
    return await _subscription_page(request, session, sub_id, sub=sub, test_result=result,
                                    test_type=event_type, test_data=fields.get("data", ""))


# ---- deliveries -------------------------------------------------------------------------

def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:  # also takes "2026-12-01 13:00", "2026-12-01T13:00:00" and "2026-12-01"
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PageError(400, f"{name}: give a date and time like 2026-12-01 13:00 "
                             "(UTC, 24-hour clock).") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


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
            "since": _time(params.get("since"), "since"),
            "until": _time(params.get("until"), "until")}


def _query(filters: dict[str, Any], **more: str) -> str:
    values = {k: (v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else v)
              for k, v in {**filters, **more}.items() if v}
    return urlencode(values)


@router.get("/deliveries")
async def deliveries(request: Request, session: Admin) -> Response:
    params = dict(request.query_params)
    try:
        filters = delivery_filters(params)
        cursor = _cursor(params.get("cursor"), "dlv")
    except PageError as exc:
        return render(request, "deliveries.html", status=exc.status, session=session,
                      error=exc.message, filters={}, raw=params, rows=[], statuses=STATUSES)
    store = _store(request)
    page = await store.list_deliveries(None, cursor=cursor, limit=PAGE_SIZE, **filters)
    names = await store.subscription_names(
        [r["subscription_id"] for r in page.rows] + [filters["subscription_id"] or ""])
    return render(request, "deliveries.html", session=session, filters=filters, raw=params,
                  rows=page.rows, statuses=STATUSES, names=names,
                  next_query=_query(filters, cursor=page.next_cursor) if page.next_cursor
                  else None,
                  replay_query=_query({**filters, "status": "failed"}))


async def _delivery_page(request: Request, session: Session, delivery_id: str,
                         status: int = 200, **context: Any) -> Response:
    store = _store(request)
    delivery = await _found(store.get_delivery(_path_id(delivery_id, "dlv"), None))
    attempts = await store.list_attempts(delivery_id, None, None, 500, "asc")
    event = await _found(store.get_event(delivery["event_id"], None))
    in_flight = (delivery["status"] == "pending" and delivery["lease_until"] is not None
                 and delivery["lease_until"] > utcnow())
    names = await store.subscription_names([delivery["subscription_id"]])
    return render(request, "delivery.html", status=status, session=session, d=delivery,
                  attempts=attempts.rows, payload=pretty_payload(bytes(event["payload"])),
                  in_flight=in_flight, names=names, **context)


@router.get("/deliveries/{delivery_id}")
async def delivery(request: Request, session: Admin, delivery_id: str) -> Response:
    return await _delivery_page(request, session, delivery_id)


@router.post("/deliveries/{delivery_id}/retry")
async def retry(request: Request, session: Admin, delivery_id: str) -> Response:
    await form_of(request, session)
    try:
        await _found(_store(request).retry_now(_path_id(delivery_id, "dlv"), None))
    except Conflict as exc:
        return await _delivery_page(request, session, delivery_id, status=409,
                                    error=exc.message)
    audit.info("dashboard: retry now", extra={"key_id": session.key_id,
                                              "delivery_id": delivery_id})
    return RedirectResponse(f"/ui/deliveries/{delivery_id}?done=retry", status_code=303)


# ---- events -----------------------------------------------------------------------------

@router.get("/events/{event_id}")
async def event(request: Request, session: Admin, event_id: str) -> Response:
    store = _store(request)
    found = await _found(store.get_event(_path_id(event_id, "evt"), None))
    try:
        data = json.loads(bytes(found["payload"]))["data"]
        shown = pretty_payload(json.dumps(data).encode())
    except (ValueError, KeyError, TypeError):  # not a body this service wrote: show it all
        shown = pretty_payload(bytes(found["payload"]))
    page = await store.list_deliveries(None, event_id=event_id, limit=EVENT_DELIVERIES,
                                      order="asc")
    names = await store.subscription_names([r["subscription_id"] for r in page.rows])
    return render(request, "event.html", session=session, e=found, data=shown,
                  rows=page.rows, more=page.next_cursor is not None, names=names)


# ---- bulk replay ------------------------------------------------------------------------

def _replay_filter(params: dict[str, str]) -> tuple[dict[str, Any], DeliveryFilter]:
    filters = delivery_filters({**params, "status": "failed"})
    return filters, DeliveryFilter(**filters)


@router.get("/replay")
async def replay_confirm(request: Request, session: Admin) -> Response:
    filters, chosen = _replay_filter(dict(request.query_params))
    store = _store(request)
    count = await store.count_replayable(chosen)
    names = await store.subscription_names([filters["subscription_id"] or ""])
    return render(request, "replay_confirm.html", session=session, filters=filters,
                  count=count, back=_query(filters), names=names)


@router.post("/replay")
async def replay_start(request: Request, session: Admin) -> Response:
    fields = await form_of(request, session)
    _, chosen = _replay_filter(fields)
    store = _store(request)
    total = await store.count_replayable(chosen)
    job = request.app.state.replay_jobs.start(store, chosen, total)
    audit.info("dashboard: replay %s of %d failed deliveries started (%s)", job.id, total,
               chosen, extra={"key_id": session.key_id})
    return RedirectResponse(f"/ui/replay/{job.id}", status_code=303)


@router.get("/replay/{job_id}")
async def replay_progress(request: Request, session: Admin, job_id: str) -> Response:
    job = request.app.state.replay_jobs.get(job_id)
    if job is None:
        raise PageError(404, "No replay of that name is known to this server (replays are "
                             "tracked by the process that started them, until it restarts).")
    return render(request, "replay_progress.html", session=session, job=job,
                  back=_query(asdict(job.filter)))


# ---- wiring -----------------------------------------------------------------------------

async def _login_needed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginNeeded)
    return RedirectResponse("/ui/login?" + urlencode({"next": exc.next_path}), status_code=303)


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return render(request, "error.html", status=exc.status,
                  session=await current_session(request), message=exc.message)


def mount(app: FastAPI) -> None:
    """Serve the dashboard at /ui on ``app``."""
    from importlib.resources import files

    app.state.replay_jobs = ReplayJobs()
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=str(files("dispatcher.ui") / "static")),
              name="ui-static")
    app.add_exception_handler(LoginNeeded, _login_needed)
    app.add_exception_handler(PageError, _page_error)
