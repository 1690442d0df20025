"""How many attempts of one subscription one worker may have in flight: a pure decision.

A receiver that is slow or does not answer holds every slot it is given until its deadline,
so it gets few (``MAX_IN_FLIGHT_PER_SUBSCRIPTION``). A fast one frees its slots at once and
needs many only when it is busy (rate × latency), so once it has shown itself fast it may
use a quarter of the worker's slots: one dead receiver then holds a quarter at most, and only
until its first attempt has been in flight ``SLOW_SECONDS``.
"""

from __future__ import annotations

SLOW_SECONDS = 1.0  # an attempt running longer than this marks its receiver slow
OPEN_SHARE = 4  # a fast receiver may use 1/OPEN_SHARE of the worker's slots


def in_flight_cap(base: int, concurrency: int, fast_streak: int) -> int:
    """The cap for a subscription whose last ``fast_streak`` attempts each finished within
    ``SLOW_SECONDS`` (0: a slow one, or one this worker has not seen lately): ``base``
    until ``base`` of them in a row were fast, then a share of the worker's slots."""
    if fast_streak < base:
        return base
    return max(base, concurrency // OPEN_SHARE)


def streak_after(fast_streak: int, seconds: float) -> int:
    """The streak once an attempt has taken (or has been running for) ``seconds``."""
    return fast_streak + 1 if seconds < SLOW_SECONDS else 0
