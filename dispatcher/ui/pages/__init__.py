"""The operator dashboard (``/ui``): server-rendered pages for holders of an admin key.

Pages read and change through the store, as the API routes do. Every change is a POST of a
form carrying the session's CSRF token (and, when the browser sends one, a same-origin
``Origin``); the session cookie is ``HttpOnly`` and ``SameSite=Strict``. One module per
area registers its pages on ``site.router``.
"""

from __future__ import annotations

from importlib.resources import files
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

# isort: off
# Imported for their pages, registered on the router in this order.
from . import login, overview, subscriptions, tenants, deliveries, replay, event_types  # noqa: F401
# isort: on
from ..replays import ReplayJobs
from .site import LoginNeeded, PageError, current_session, pretty_payload, render, router

__all__ = ["PageError", "mount", "page_error", "pretty_payload"]


async def _login_needed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginNeeded)
    return RedirectResponse("/ui/login?" + urlencode({"next": exc.next_path}), status_code=303)


async def page_error(request: Request, exc: PageError) -> Response:
    return render(request, "error.html", status=exc.status,
                  session=await current_session(request), message=exc.message)


def mount(app: FastAPI) -> None:
    """Serve the dashboard at /ui on ``app``."""
    app.state.replay_jobs = ReplayJobs()
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=str(files("dispatcher.ui") / "static")),
              name="ui-static")
    app.add_exception_handler(LoginNeeded, _login_needed)
