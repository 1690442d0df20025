"""Log in with an admin key, and log out."""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from ...vocabulary import Role
from ..session import COOKIE, make_cookie
from .site import Admin, PageError, audit, fields_of, form_of, render, router, same_origin, store_of


def safe_next(value: str | None) -> str:
    if value and value.startswith("/ui") and not value.startswith("//"):
        return value
    return "/ui"


@router.get("/login")
async def login_page(request: Request, next: str = "/ui") -> Response:  # noqa: A002
    return render(request, "login.html", next=safe_next(next))


@router.post("/login")
async def log_in(request: Request) -> Response:
    fields = await fields_of(request)
    next_path = safe_next(fields.get("next"))
    if not same_origin(request):
        raise PageError(403, "The log-in form came from another site.")
    found = await store_of(request).authenticate(fields.get("key", "").strip())
    if found is None or found["role"] != Role.ADMIN:
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
