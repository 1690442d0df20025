"""Event type names and the subscription patterns that select them.

A pattern is ``*`` (everything but dispatcher's own operational events), an exact type, or
``prefix.*`` (any type below ``prefix``, one or more further segments).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

TYPE_MAX_LENGTH = 128
TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
# dispatcher's own operational events: reached only by naming them, never posted.
RESERVED_PREFIX = "dispatcher."
PATTERN_PATTERN = re.compile(r"^(\*|[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*(\.\*)?)$")


def is_valid_type(name: str) -> bool:
    return len(name) <= TYPE_MAX_LENGTH and TYPE_PATTERN.fullmatch(name) is not None


def is_valid_pattern(pattern: str) -> bool:
    return len(pattern) <= TYPE_MAX_LENGTH and PATTERN_PATTERN.fullmatch(pattern) is not None


def is_reserved(event_type: str) -> bool:
    """Whether ``event_type`` is one of dispatcher's own (``dispatcher.…``)."""
    return event_type.startswith(RESERVED_PREFIX)


def reaches_reserved(patterns: Iterable[str]) -> list[str]:
    """The patterns of ``patterns`` that name operational events (``dispatcher.…``)."""
    return [p for p in patterns if is_reserved(p)]


def matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return not is_reserved(event_type)
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def matches_any(patterns: Iterable[str], event_type: str) -> bool:
    return any(matches(p, event_type) for p in patterns)
