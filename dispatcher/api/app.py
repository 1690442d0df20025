"""The FastAPI application and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from .. import __version__, tracing
from ..config import Settings
from ..service import running
from ..store import Store
from . import docs, errors, openapi
from .limits import BodyLimits
from .routes import (
    deliveries,
    event_types,
    events,
    health,
    keys,
    metrics,
    subscriptions,
    tenants,
)
from .timeouts import RequestDeadline

log = logging.getLogger("dispatcher.api")

# Every /v1 route refuses query parameters it does not take (400, query.StrictQueryRoute)
# and checks the key (401) and its role (403) in the database (503); the other error
# statuses are declared by each route (errors.error_responses).
V1_ERRORS = errors.error_responses(400, 401, 403, 503)


async def _bootstrap_admin(store: Store, settings: Settings) -> None:
    """Make sure an admin key exists; while the database is down, keep trying."""
    while True:
        try:
            made = await store.ensure_admin(settings.admin_token)
            break
        except Exception as exc:
            log.warning("cannot reach the database to check the admin key (%s); retrying",
                        type(exc).__name__)
            await asyncio.sleep(1)
    if made is not None:
        print(
            "No admin key was configured; created one (shown only now):\n"
            f"  DISPATCHER_ADMIN_TOKEN={made}",
            flush=True,
        )


DESCRIPTION = """Webhook fan-out: ingest events, deliver them signed (Standard Webhooks), retry
durably.

Every /v1 route needs an API key: `Authorization: Bearer <key>` (the Authorize button).
Errors answer `{"error": {"code": "...", "message": "..."}}`; each operation lists its
codes.
"""


def create_app(settings: Settings | None = None, *, workers: bool = True) -> FastAPI:
    """The API; with ``workers`` the delivery loop runs in the same event loop."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with running(settings, workers=workers) as runtime:
            # Done before serving when the database answers; in the background if not.
            bootstrap = asyncio.create_task(_bootstrap_admin(runtime.store, settings))
            await asyncio.wait([bootstrap], timeout=settings.db_connect_timeout_seconds)
            try:
                yield {
                    "runtime": runtime,
                    "store": runtime.store,
                    "http_client": runtime.http_client,
                    "settings": settings,
                }
            finally:
                bootstrap.cancel()
                await asyncio.gather(bootstrap, return_exceptions=True)

    app = openapi.Api(
        title="dispatcher",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=openapi.TAGS,
        docs_url=None,  # docs.mount serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    errors.install(app)
    # The dashboard's pages post HTML forms; the API takes JSON only.
    app.add_middleware(BodyLimits, max_bytes=settings.max_payload_bytes,
                       forms_under=("/ui/", "/portal/"))
    # Added last, so outermost: the deadline covers reading the body too.
    app.add_middleware(RequestDeadline, seconds=settings.api_request_timeout_seconds)
    # Routes are matched in order, one by one: ingest, the hot path, comes first.
    for module in (events, keys, subscriptions, deliveries, tenants, event_types):
        app.include_router(module.router, responses=V1_ERRORS)
    app.include_router(health.router)
    app.include_router(metrics.router)
    docs.mount(app)
    if settings.ui_enabled or settings.portal_enabled:
        from ..ui import mount

        mount(app, dashboard=settings.ui_enabled, portal=settings.portal_enabled)
    # A server span per request, when the OTEL_* environment asks for traces.
    tracing.from_environment()
    tracing.instrument_app(app)
    return app
