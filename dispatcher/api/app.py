"""The FastAPI application and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..config import Settings
from ..service import running
from . import errors
from .limits import BodyLimits
from .routes import deliveries, events, health, keys, subscriptions
from .schemas import ErrorOut

ERROR_RESPONSES = {
    code: {"model": ErrorOut, "description": text}
    for code, text in {
        400: "bad request", 401: "missing or unknown API key", 403: "role may not do this",
        404: "not found", 409: "conflict", 413: "body too large", 415: "not JSON",
        422: "invalid fields",
    }.items()
}


def create_app(settings: Settings | None = None, *, workers: bool = True) -> FastAPI:
    """The API; with ``workers`` the delivery loop runs in the same event loop."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        async with running(settings, workers=workers) as runtime:
            made = await runtime.store.ensure_admin(settings.admin_token)
            if made is not None:
                print(
                    "No admin key was configured; created one (shown only now):\n"
                    f"  DISPATCHER_ADMIN_TOKEN={made}",
                    flush=True,
                )
            yield {
                "runtime": runtime,
                "store": runtime.store,
                "http_client": runtime.http_client,
                "settings": settings,
            }

    app = FastAPI(
        title="dispatcher",
        version=__version__,
        description="Webhook fan-out: ingest events, deliver them signed, retry durably.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(BodyLimits, max_bytes=settings.max_payload_bytes)
    app.include_router(health.router)
    for module in (keys, subscriptions, events, deliveries):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    return app
