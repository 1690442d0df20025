"""Every error leaves as ``{"error": {"code", "message"}}`` with the right status."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..error_body import error_body
from ..outage import DATABASE_ERRORS, describe, is_database_away
from ..sealing import SealingError
from ..store import Conflict, Invalid, NotFound, TenantNotFound
from .limits import NOT_UTF8, TOO_DEEP
from .messages import explain
from .schemas import ErrorOut

log = logging.getLogger("dispatcher.api")

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


NOT_JSON = "the request body is not valid JSON"


# What each error status means in /openapi.json (docs/api.md has the whole table).
ERROR_DESCRIPTIONS = {
    400: "invalid_json, invalid_content_length, or a bad parameter: invalid_parameter, "
         "invalid_cursor, unknown_parameter (a query parameter the endpoint does not take)",
    401: "unauthorized: no, unknown or deleted API key",
    403: "forbidden: the key's role may not do this",
    404: "not_found: no such resource, or another owner's; tenant_not_found: no such tenant, "
         "or not this key's",
    409: "conflict",
    413: "payload_too_large: the body is larger than DISPATCHER_MAX_PAYLOAD_BYTES",
    415: "unsupported_media_type: the body is not application/json",
    422: "validation_error: a body field is missing, of the wrong type, unknown or invalid",
    503: "database_unavailable: the database does not answer, or request_timeout: the "
         "request took too long; try again shortly",
}
# Every POST and PATCH: the body is read, size- and type-checked before any route runs.
BODY_ERRORS = (400, 413, 415)


# An example message of each code, shown in /docs with the first code a status lists.
ERROR_EXAMPLES = {
    "invalid_json": NOT_JSON,
    "unauthorized": "send 'Authorization: Bearer <api key>'",
    "forbidden": "a subscriber key may not do this",
    "not_found": "no such resource: sub_01jjrbz0v2f5kq8c6n3p4r7t8b",
    "tenant_not_found": "no such tenant: acme-corp",
    "portal_disabled": "the portal is turned off here (DISPATCHER_PORTAL_ENABLED=false): a "
                       "link would open nothing",
    "invalid_tenant_id": "a tenant id is 1 to 64 letters, digits, '_', '.', ':' or '-', "
                         "starting with a letter or digit",
    "tenant_mismatch": "sub_01jjrbz0v2f5kq8c6n3p4r7t8b does not belong to the event's tenant",
    "conflict": "the resource is in a state that does not allow this",
    "too_many_subscriptions": "this key already owns 1000 subscriptions, the most allowed "
                              "(DISPATCHER_MAX_SUBSCRIPTIONS_PER_OWNER)",
    "attempt_in_progress": "an attempt of this delivery is under way",
    "payload_too_large": "the request body is larger than 262144 bytes",
    "unsupported_media_type": "send the body as application/json",
    "validation_error": "body: must be a JSON object",
    "database_unavailable": "the database does not answer; try again shortly",
}


def _example(description: str) -> dict[str, Any]:
    code = re.match(r"[a-z_]+", description)
    name = code.group() if code and code.group() in ERROR_EXAMPLES else "conflict"
    return error_body(name, ERROR_EXAMPLES[name])


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the error statuses a route can answer, each with ``ErrorOut``
    and an example of its first code.

    ``descriptions`` replaces the generic text, keyed ``s409="..."``.
    """
    answers: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        text = descriptions.get(f"s{status}", ERROR_DESCRIPTIONS[status])
        answers[status] = {"model": ErrorOut, "description": text, "content": {
            "application/json": {"example": _example(text)}}}
    return answers


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers or None)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "invalid_json", NOT_JSON)
    if errors and all(e["loc"] and e["loc"][0] == "path" for e in errors):
        # A path id of the wrong shape names nothing (paging.path_id).
        return error_response(404, "not_found", "no such resource: "
                              + ", ".join(str(e.get("input")) for e in errors))
    in_body = [e for e in errors if e["loc"] and e["loc"][0] == "body"]
    chosen = in_body or list(errors)
    message = explain(chosen)
    if in_body:
        return error_response(422, "validation_error", message)
    return error_response(400, "invalid_parameter", message)


def _parse_failure(cause: BaseException | None) -> str:
    """Why json.loads refused a body, when it was not a syntax error."""
    if isinstance(cause, UnicodeError):
        return NOT_UTF8
    if isinstance(cause, ValueError) and "digits" in str(cause):
        # Python's limit on converting long integers (sys.get_int_max_str_digits).
        return (f"the request body has a number with more than {sys.get_int_max_str_digits()} "
                "digits")
    if isinstance(cause, RecursionError):
        return TOO_DEEP
    return NOT_JSON


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 400 and message == "There was an error parsing the body":
        # FastAPI's words for any failure of json.loads other than a syntax error.
        text = _parse_failure(exc.__cause__)
        return error_response(400, "invalid_json", text)
    if exc.status_code == 404 and message == "Not Found":
        message = "no such path"
    return error_response(exc.status_code, code, message, **(exc.headers or {}))


def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)


def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return error_response(404, "not_found", f"no such resource: {exc}")


def _tenant_not_found(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TenantNotFound)
    return error_response(404, "tenant_not_found", f"no such tenant: {exc.tenant_id}")


def _conflict(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Conflict)
    return error_response(409, exc.code, exc.message)


def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Invalid)
    return error_response(422, exc.code, exc.message)


def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not is_database_away(exc):
        return _internal(request, exc)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                describe(exc))
    return error_response(503, "database_unavailable",
                          "the database does not answer; try again shortly", **{"retry-after": "1"})


def _sealing_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("signing secrets cannot be opened: %s", exc)
    return error_response(503, "secret_key_missing",
                          "signing secrets are sealed and this server cannot open them")


def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; the server log has details")


def without_fastapi_422(schema: dict[str, Any]) -> None:
    """FastAPI documents a 422 ``HTTPValidationError`` on every route with parameters; the
    handler above answers those errors as ``ErrorOut``, 400 for parameters and 422 for
    bodies, which each route declares itself. Drop FastAPI's from ``/openapi.json``."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            ref = (responses.get("422", {}).get("content", {})
                   .get("application/json", {}).get("schema", {}).get("$ref", ""))
            if ref.endswith("/HTTPValidationError"):
                del responses["422"]
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(TenantNotFound, _tenant_not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(Invalid, _invalid)
    app.add_exception_handler(SealingError, _sealing_error)
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _database_error)
    app.add_exception_handler(Exception, _internal)
