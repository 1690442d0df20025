"""The pages: the operator dashboard at ``/ui`` (``pages``: holders of an admin key) and
the tenant portal at ``/portal`` (``portal``: the publisher's customers, from a link).
Server-rendered (Jinja2, a little plain JavaScript, no build step); they share templates,
styles, script and the page helpers of ``pages.site``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from .pages.site import PageError


def mount(app: FastAPI, *, dashboard: bool, portal: bool) -> None:
    """Serve the dashboard, the portal, or both, on ``app``."""
    from . import pages
    from . import portal as tenant_portal

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        if request.url.path.startswith("/portal"):
            visit = await tenant_portal.current_visit(request)
            return tenant_portal.render(request, "portal/error.html", visit,
                                        status=exc.status, message=exc.message)
        return await pages.page_error(request, exc)

    if dashboard:
        pages.mount(app)
    if portal:
        tenant_portal.mount(app)
    if dashboard or portal:
        app.add_exception_handler(PageError, page_error)


__all__ = ["mount"]
