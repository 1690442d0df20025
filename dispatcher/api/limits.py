"""Request bodies: JSON only, and no larger than ``DISPATCHER_MAX_PAYLOAD_BYTES``.

Checked before any route runs, while the body is read, so a false or missing
Content-Length does not let a larger body through.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..error_body import error_bytes

BODY_METHODS = {b"POST", b"PUT", b"PATCH"}


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


SUSPECT = re.compile(rb"NaN|Infinity|\\u[dD][89a-fA-F]")
# Levels of objects and arrays a body may nest (the body itself is one). Deeper bodies pass
# json.loads up to ~1,000 levels, but pydantic cannot serialize them back (past ~250 levels
# GET /v1/events/{id} would fail), and past ~1,000 json.loads stops with RecursionError.
MAX_JSON_DEPTH = 128
TOO_DEEP = f"the request body is nested too deeply: at most {MAX_JSON_DEPTH} levels of " \
           "objects and arrays"
NOT_UTF8 = "the request body is not UTF-8 text"
# A JSON string, whole (possessive: an unterminated one fails in one pass, no backtracking).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")


def nested_too_deeply(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text opens more than ``max_depth`` objects and arrays at once.

    Decided on the text, before parsing, so no depth makes a parser recurse. Each pass
    removes every innermost ``[]`` and ``{}`` (one level), all of it in C: a body with
    fewer brackets than ``max_depth`` costs two counts, a large one a few milliseconds.
    """
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if re.search(rb"[\[{]{%d}" % (max_depth + 1), brackets):
        return True  # the usual deep body opens them all in a row: no pass needed
    for _ in range(max_depth):
        brackets, removed = _EMPTY_PAIR.subn(b"", brackets)
        if not removed:
            return False  # balanced and done, or malformed: the parser says which
    return _EMPTY_PAIR.search(brackets) is not None


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def _has_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def strict_json_problem(body: bytes) -> str | None:
    """What Python's lenient parser lets through but JSON text (RFC 8259) is not.

    NaN and Infinity, and escapes of lone UTF-16 surrogates, cannot be sent on as JSON in
    UTF-8. Only bodies that mention them are parsed here, so the usual body costs a scan.
    """
    if SUSPECT.search(body) is None:
        return None
    try:
        parsed = json.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:
        if str(exc) in ("NaN", "Infinity", "-Infinity"):
            return f"{exc} is not a JSON value"
        return None  # malformed: the route's parser says so
    except RecursionError:
        return None
    if _has_lone_surrogate(parsed):
        return "the body escapes a lone UTF-16 surrogate, which is not text"
    return None


class BodyLimits:
    """``forms_under``: paths (prefixes) that take HTML form posts instead of JSON."""

    def __init__(self, app: ASGIApp, max_bytes: int, forms_under: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.forms_under = forms_under

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"].encode() not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await reject(send, 400, "invalid_content_length", "Content-Length is not a number")
                return
            if int(length) > self.max_bytes:
                await reject(send, 413, "payload_too_large", self._too_large())
                return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await reject(send, 413, "payload_too_large", self._too_large())
                return
        whole = bytes(body)  # one copy, checked and then handed on
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        form = scope["path"].startswith(self.forms_under) and _is_form(content_type)
        if whole and not form:
            if not _is_json(content_type):
                await reject(send, 415, "unsupported_media_type",
                              "send the body as application/json")
                return
            if nested_too_deeply(whole):
                await reject(send, 400, "invalid_json", TOO_DEEP)
                return
            problem = strict_json_problem(whole)
            if problem is not None:
                await reject(send, 400, "invalid_json", problem)
                return

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": whole, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"


async def reject(send: Send, status: int, code: str, message: str) -> None:
    """Answer an error below FastAPI, and close the connection (the body may be unread)."""
    payload = error_bytes(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
