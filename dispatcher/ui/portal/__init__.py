"""The tenant portal (``/portal``): the publisher's customer, holding a portal link, manages
its own endpoints and sees, retries and recovers its deliveries. Server-rendered with the
dashboard's templates, styles and script; it sees one tenant only, through ``Scope``.

Links are ``/portal#<secret>``: the fragment never reaches a server, the page's script
trades it for an ``HttpOnly`` cookie (``gate``) and takes it out of the address bar.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

# isort: off
# Imported for their pages, registered on the router in this order.
from . import gate, endpoints, deliveries  # noqa: F401
# isort: on
from .gate import gate as gate_page
from .site import SessionEnded, current_visit, render, router

__all__ = ["current_visit", "mount", "render"]


def mount(app: FastAPI) -> None:
    """Serve the portal at /portal on ``app``."""
    app.include_router(router)
    app.mount("/portal/static", StaticFiles(directory=str(files("dispatcher.ui") / "static")),
              name="portal-static")

    async def _ended(request: Request, exc: Exception) -> Response:
        return gate_page(request)

    app.add_exception_handler(SessionEnded, _ended)
