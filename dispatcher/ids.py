"""Prefixed, time-ordered identifiers: ``evt_`` + 26 base32 characters.

48 bits of millisecond time then 80 random bits, so ``ORDER BY id`` is creation order and a
list cursor is simply the last id seen. Within one millisecond a process increments the
random part, so its ids stay strictly increasing.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = 0

PREFIXES = ("sub", "evt", "dlv", "att", "key")
ID_PATTERN = re.compile(r"^(sub|evt|dlv|att|key)_[0-9a-hjkmnp-tv-z]{26}$")


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    global _last
    millis = time.time_ns() // 1_000_000
    value = (millis << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS)
    with _lock:
        if value <= _last:
            value = _last + 1
        _last = value
    return f"{prefix}_{_encode(value)}"


def time_bound(prefix: str, when: datetime) -> str:
    """The smallest id of ``prefix`` made at ``when`` (millisecond precision).

    Ids sort by creation, so a time window on a table is also a range of its primary key,
    which the database can scan instead of filtering every row.
    """
    millis = max(0, int(when.timestamp() * 1000))
    return f"{prefix}_{_encode(millis << _RANDOM_BITS)}"


def is_id(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and ID_PATTERN.fullmatch(value) is not None
