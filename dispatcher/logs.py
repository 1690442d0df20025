"""Log output of the dispatcher processes: text, or one JSON object per line.

Both formats carry the ids of what a line is about (passed with ``extra=``): the text
format appends them as ``key=value``, the JSON format as fields. uvicorn's loggers go
through the same handler. What the code logs never holds a secret: no signing secrets, API
keys, signature or custom header values, and no subscription URL (it may carry a token);
the subscription id names the target. URLs inside error texts are cut to their host.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from .clock import rfc3339
from .config import Settings

# The fields a record may carry (``extra=``), in the order they are shown.
FIELDS = (
    "event_id", "delivery_id", "subscription_id", "attempt_id", "number", "trigger",
    "status_code", "duration_ms", "outcome", "delivery_status", "next_attempt_at",
    "deliveries", "error", "key_id", "replayed", "tenant_id", "portal_link_id", "pid",
)
# An error text may quote a URL (a redirect's location): keep scheme and host only, as the
# path or query may be a credential.
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/\s@)\"']*@)?([^/\s?#)\"']*)"
                  r"[^\s)\"']*")


def redact_urls(text: str) -> str:
    return _URL.sub(lambda m: f"{m[1]}{m[2]}/…", text)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The known ``extra=`` fields this record carries, ready to print."""
    found = record.__dict__
    out: dict[str, Any] = {}
    for name in FIELDS:
        if name in found:
            value = found[name]
            if isinstance(value, datetime):
                value = rfc3339(value, "milliseconds")
            elif name == "error" and isinstance(value, str) and "://" in value:
                value = redact_urls(value)
            out[name] = value
    return out


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", <fields>, "exc_info"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": rfc3339(datetime.fromtimestamp(record.created, UTC), "milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(fields_of(record))
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - the base's name
        text = super().formatMessage(record)
        extra = fields_of(record)
        if not extra:
            return text
        return text + "".join(f" {name}={_text(value)}" for name, value in extra.items())


def _text(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    if not text or any(c.isspace() or c in "\"=" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class _WithPid(logging.Filter):
    """Adds ``pid``: which of ``dispatcher serve``'s processes wrote the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.pid = record.process
        return True


def configure(settings: Settings, stream: TextIO | None = None, *, pid: bool = False) -> None:
    """One handler on the root logger in the chosen format; uvicorn's loggers (server and
    access) pass their records to it. With ``pid`` every line names its process (serve and
    its worker processes share one stderr)."""
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {settings.log_level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    if pid:
        handler.addFilter(_WithPid())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(level)
    # Warnings too, so that every line of the log has the chosen format.
    logging.captureWarnings(True)
    # httpx logs every request at info; the worker logs every attempt itself. aiosqlite logs
    # every statement at debug with its parameters: signing secrets, hashes of keys and links.
    for name in ("httpx", "aiosqlite"):
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
