"""``/docs`` (Swagger UI) and ``/redoc``, whole without internet.

Their scripts and styles are those the ``fastapi-offline`` package ships, served from
``/docs/assets``. A Content-Security-Policy keeps each page to this server: ReDoc would
otherwise fetch its maker's logo from a CDN on every view.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
# The pages' own inline script starts the viewer; ReDoc's search runs in a blob: worker.
POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
          "'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
          "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'self'")
# The key given to Authorize stays in the page only: not kept in the browser's storage.
SWAGGER_UI_PARAMETERS = {"persistAuthorization": False, "displayRequestDuration": True}


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["content-security-policy"] = POLICY
    return page


def mount(app: FastAPI) -> None:
    """Serve the docs pages and their assets; build ``app`` with ``docs_url=None`` and
    ``redoc_url=None`` so that FastAPI's CDN pages are not there."""
    directory = files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(directory)), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _confined(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        ))

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _confined(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} API",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png", with_google_fonts=False,
        ))
