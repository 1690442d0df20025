"""What every dashboard page shares: the router, templates and their filters, the admin
session a page needs, the checked form of a change, and the errors a page answers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader

from ... import ids
from ...clock import as_utc, utcnow
from ...health import Rate
from ...signing import shown
from ...store import NotFound, Store
from ...vocabulary import DeliveryStatus
from ..session import COOKIE, Session, csrf_ok, key_id_of, open_session

router = APIRouter(prefix="/ui", include_in_schema=False)
# Who did what from the dashboard: one info line per change (key ids, never keys).
audit = logging.getLogger("dispatcher.ui")
T = TypeVar("T")

PAGE_SIZE = 50
PAYLOAD_SHOWN = 65536  # characters of a pretty-printed payload shown on a page
DONE = {
    "retry": "One more attempt is scheduled now.",
    "enabled": "The subscription is enabled; its held deliveries are being sent.",
    "disabled": "The subscription is disabled; new deliveries wait as held.",
    "options": "The delivery options are saved; they apply from the next attempt.",
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
    return "—" if value is None else as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


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


def _seconds_number(value: float) -> str:
    """Seconds as typed: 10, 0.5 (no trailing .0)."""
    return f"{value:g}" if float(value) != int(value) else str(int(value))


def _seconds(value: float) -> str:
    return f"{_seconds_number(value)} s"


templates = Environment(
    loader=PackageLoader("dispatcher.ui", "templates"), autoescape=True,
    trim_blocks=True, lstrip_blocks=True,
)
templates.filters.update(when=_when, ago=_ago, span=_span, percent=_percent,
                         seconds=_seconds, seconds_number=_seconds_number,
                         # a whsec_ secret, or a whsk_ key's public key: never a private key
                         shown_secret=shown)
# Templates compare statuses with the vocabulary's members, as the code does.
templates.globals["Status"] = DeliveryStatus


class LoginNeeded(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def render(request: Request, name: str, status: int = 200, session: Session | None = None,
           headers: dict[str, str] = HEADERS, **context: Any) -> HTMLResponse:
    """A page; ``headers`` its security headers (the portal's are its own); ``static`` in
    ``context`` where its stylesheet and scripts are served."""
    # After a change, its page is shown again with ?done=<what> (a fixed text, not echoed).
    context.setdefault("done", DONE.get(request.query_params.get("done", "")))
    context.setdefault("static", "/ui/static")
    html = templates.get_template(name).render(
        request=request, session=session, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status, headers=headers)


def store_of(request: Request) -> Store:
    store: Store = request.state.store
    return store


async def found(work: Awaitable[T]) -> T:
    try:
        return await work
    except NotFound as exc:
        raise PageError(404, f"Nothing is called {exc}.") from None


def cursor_of(value: str | None, prefix: str) -> str | None:
    if not value:
        return None
    if not ids.is_id(value, prefix):
        raise PageError(400, "That page link is not valid; start again from the first page.")
    return value


def tenant_param(value: str | None) -> str | None:
    """A ``tenant_id`` filter from a query or a form: none when empty, 400 when malformed."""
    value = (value or "").strip()
    if not value:
        return None
    if not ids.is_tenant_id(value):
        raise PageError(400, f"tenant_id is {ids.TENANT_ID_RULE}.")
    return value


def path_id(value: str, prefix: str) -> str:
    """An id from the path; one of the wrong shape names nothing (404, as in the API)."""
    if not ids.is_id(value, prefix):
        raise PageError(404, f"Nothing is called {value}.")
    return value


async def current_session(request: Request) -> Session | None:
    cookie = request.cookies.get(COOKIE, "")
    key_id = key_id_of(cookie)
    if key_id is None:
        return None
    key_hash = await store_of(request).admin_key_hash(key_id)
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


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # older browsers send none on same-origin posts; the token decides
        return True
    if origin == "null":  # what a page with Referrer-Policy: no-referrer (the portal) posts
        return request.headers.get("sec-fetch-site") == "same-origin"
    return urlsplit(origin).netloc == request.headers.get("host")


async def fields_of(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def form_of(request: Request, session: Session) -> dict[str, str]:
    """The posted form, once its CSRF token and origin are checked."""
    fields = await fields_of(request)
    if not same_origin(request) or not csrf_ok(session, fields.get("csrf")):
        raise PageError(403, "This form is out of date or came from another site. "
                             "Reload the page and try again.")
    return fields
