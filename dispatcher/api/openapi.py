"""What ``/openapi.json`` says beyond what FastAPI derives from the routes: who must send a
key, and the tags' texts. ``/docs`` (Swagger UI) shows an Authorize button from it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .errors import without_fastapi_422

API_KEY = "apiKey"
METRICS_TOKEN = "metricsToken"
SECURITY_SCHEMES = {
    API_KEY: {
        "type": "http", "scheme": "bearer",
        "description": "An API key (`dk_…`) from `POST /v1/api-keys`, or "
                       "`DISPATCHER_ADMIN_TOKEN`, sent as `Authorization: Bearer <key>`. Every "
                       "/v1 route needs one; its role decides what it may do.",
    },
    METRICS_TOKEN: {
        "type": "http", "scheme": "bearer",
        "description": "`DISPATCHER_METRICS_TOKEN`, when it is set: /metrics then needs it.",
    },
}
# The security of each operation, by path prefix; others need none.
SECURITY_BY_PREFIX: tuple[tuple[str, list[dict[str, list[str]]]], ...] = (
    ("/v1/", [{API_KEY: []}]),
    ("/metrics", [{}, {METRICS_TOKEN: []}]),  # {}: none needed unless the token is set
)
TAGS = [
    {"name": "events", "description": "Publish events and see where they went."},
    {"name": "subscriptions", "description": "Where events go: URLs, event types, secrets."},
    {"name": "deliveries", "description": "One event to one subscription, and its attempts."},
    {"name": "tenants", "description": "Your customers: each one's subscriptions receive only "
                                       "the events published for it."},
    {"name": "event types", "description": "The catalog: what each type means, and the JSON "
                                           "Schema its events' data must match."},
    {"name": "api keys", "description": "Who may call the API, and with which role."},
    {"name": "operations", "description": "Health, readiness and metrics; no API key."},
]


def _security_of(path: str) -> list[dict[str, list[str]]] | None:
    for prefix, security in SECURITY_BY_PREFIX:
        if path.startswith(prefix):
            return security
    return None


def with_security(schema: dict[str, Any]) -> None:
    """Add the security schemes, and each operation's security, to the document."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema.get("paths", {}).items():
        security = _security_of(path)
        if security is not None:
            for operation in operations.values():
                operation["security"] = security


class Api(FastAPI):
    """FastAPI whose ``/openapi.json`` is finished here: FastAPI's 422s out (errors.py), the
    security in."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            without_fastapi_422(schema)
            with_security(schema)
        return super().openapi()
