"""Validation errors in plain words: what a field must be, never pydantic's own phrasing.

pydantic says "Input should be a valid string", "Field required" or "Value error, …"; the
API's ``message`` says "must be a string", "is required", or the validator's own text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .schemas import NO_NUL

DATETIME = "must be a date and time, like 2025-01-31T12:00:00Z"
INTEGER = "must be a whole number"
OBJECT = "must be a JSON object"


# pydantic names a Literal's enum members by repr (<Role.ADMIN: 'admin'>): show their text.
MEMBER = re.compile(r"<\w+\.\w+: ('[^']*')>")


def _one_of(ctx: Mapping[str, Any]) -> str:
    expected = MEMBER.sub(r"\1", str(ctx.get("expected", "")))
    return f"must be one of {expected}" if " or " in expected else f"must be {expected}"


def _pattern(ctx: Mapping[str, Any]) -> str:
    if ctx.get("pattern") == NO_NUL:
        return "must not contain NUL characters"
    return f"must match the pattern {ctx.get('pattern')}"


def _items(word: str, count: Any) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# pydantic's error type -> the plain text, from the error's context (``ctx``).
PLAIN: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda c: "is required",
    "extra_forbidden": lambda c: "is not allowed (unknown field)",
    "string_type": lambda c: "must be a string",
    "string_unicode": lambda c: "must be text",
    "string_too_short": lambda c: f"must have at least {_items('character', c['min_length'])}",
    "string_too_long": lambda c: f"must have at most {_items('character', c['max_length'])}",
    "string_pattern_mismatch": _pattern,
    "int_type": lambda c: INTEGER,
    "int_parsing": lambda c: INTEGER,
    "int_from_float": lambda c: INTEGER,
    "int_parsing_size": lambda c: "is too large a number",
    "float_type": lambda c: "must be a number",
    "float_parsing": lambda c: "must be a number",
    "finite_number": lambda c: "must be a finite number",
    "bool_type": lambda c: "must be true or false",
    "bool_parsing": lambda c: "must be true or false",
    "dict_type": lambda c: OBJECT,
    "model_type": lambda c: OBJECT,
    "model_attributes_type": lambda c: OBJECT,
    "list_type": lambda c: "must be a list",
    "too_short": lambda c: f"must have at least {_items('item', c['min_length'])}",
    "too_long": lambda c: f"must have at most {_items('item', c['max_length'])}",
    "greater_than": lambda c: f"must be greater than {c['gt']}",
    "greater_than_equal": lambda c: f"must be at least {c['ge']}",
    "less_than": lambda c: f"must be less than {c['lt']}",
    "less_than_equal": lambda c: f"must be at most {c['le']}",
    "literal_error": _one_of,
    "enum": _one_of,
    "datetime_type": lambda c: DATETIME,
    "datetime_parsing": lambda c: DATETIME,
    "datetime_from_date_parsing": lambda c: DATETIME,
    "datetime_object_invalid": lambda c: DATETIME,
    "timezone_aware": lambda c: "must have a time zone",
    "value_error": lambda c: str(c["error"]),
    "assertion_error": lambda c: str(c["error"]),
    "recursion_loop": lambda c: "is nested too deeply",
}

# What an unlisted pydantic message may start with, and the plain words instead.
PYDANTIC_OPENINGS = re.compile(
    r"^(?:Value error, |Assertion failed, |(?:Input|String|List|Dictionary|Value|Data|Object"
    r"|Tuple|Set|Decimal|Number) should (?:be )?)"
)


def _plain_fallback(msg: str) -> str:
    opening = PYDANTIC_OPENINGS.match(msg)
    if opening is None:
        return msg[:1].lower() + msg[1:]
    rest = msg[opening.end():]
    if opening.group().endswith(", "):
        return rest
    return ("must be " if opening.group().endswith("be ") else "must ") + rest


def plain(error: Mapping[str, Any]) -> str:
    """The plain text of one pydantic error (``ValidationError.errors()`` item)."""
    ctx = error.get("ctx") or {}
    text = PLAIN.get(error.get("type", ""))
    if text is not None:
        try:
            return text(ctx)
        except KeyError:  # a context without the value we name: say it the general way
            pass
    return _plain_fallback(str(error.get("msg", "is not valid")))


def where(loc: tuple[Any, ...]) -> str:
    """The field a ``loc`` names, dotted (``headers.X-Name``); ``body`` for the body."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def explain(errors: Sequence[Mapping[str, Any]], limit: int = 5) -> str:
    """``field: what it must be``, for the first ``limit`` errors, joined by ``; ``."""
    return "; ".join(f"{where(tuple(e['loc']))}: {plain(e)}" for e in errors[:limit])
