"""Prefixed, time-ordered identifiers: ``evt_`` + 26 base32 characters.

48 bits of millisecond time then 80 random bits, so ``ORDER BY id`` is creation order and a
list cursor is simply the last id seen. Within one millisecond a process increments the
random part, so its ids stay strictly increasing.
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_RANDOM_BITS = 80
_RANDOM_BYTES = _RANDOM_BITS // 8
# Random parts are read from the OS this many at a time: one system call per 256 ids, not
# one per id (it also lets go of the GIL, which a busy event loop then keeps for a while).
_BATCH = 256
_lock = threading.Lock()
_last = 0
_random = b""
_taken = 0


def _forget_random() -> None:
    """After fork: the child must not hand out the parent's random parts again."""
    global _random, _taken
    _random, _taken = b"", 0


os.register_at_fork(after_in_child=_forget_random)

# The contract's prefixes. Portal links' ids (``ptl_``) are made with ``new_id`` too, but
# no API route takes or shows one: they are not ids of the contract.
PREFIXES = ("sub", "evt", "dlv", "att", "key")
ID_PATTERN = re.compile(r"^(sub|evt|dlv|att|key)_[0-9a-hjkmnp-tv-z]{26}$")
# A tenant's id is the publisher's own (its customer id), not one of ours.
TENANT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
TENANT_ID_RULE = ("1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter "
                  "or digit")


def is_tenant_id(value: str) -> bool:
    return TENANT_ID_PATTERN.fullmatch(value) is not None


# Two characters (10 bits) per step: half the work of one at a time, on the ingest hot path.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = tuple(range(120, -10, -10))


def _encode(value: int) -> str:
    """The low 130 bits of ``value`` as 26 base32 characters, most significant first."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_id(prefix: str) -> str:
    global _last, _random, _taken
    millis = time.time_ns() // 1_000_000
    with _lock:
        if _taken >= len(_random):
            _random, _taken = os.urandom(_RANDOM_BYTES * _BATCH), 0
        value = (millis << _RANDOM_BITS) | int.from_bytes(
            _random[_taken:_taken + _RANDOM_BYTES], "big")
        _taken += _RANDOM_BYTES
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
