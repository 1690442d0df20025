"""The one shape of every error answer, API and metrics alike:
``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def error_bytes(code: str, message: str) -> bytes:
    """The body as bytes, for answers sent below FastAPI (ASGI middleware, WSGI)."""
    return json.dumps(error_body(code, message)).encode()
