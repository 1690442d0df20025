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


# Scheduled retries yield the event loop to first attempts. A retry storm of receivers that
# answer at once keeps the worker's CPU busy, and every attempt in flight then waits for the
# others at each step: fresh deliveries slow down with the storm. Capping retries' slots
# does not help (a few slots answering in 1 ms are thousands a second), so retries start
# at a rate that follows the loop's lag, as TCP's window follows loss: it grows while the
# loop comes round quickly and retries were held back for it, and halves when it falls
# behind. First attempts claimed later than usual count as lag too (held_retries.py):
# the storm's load on the database and the API slows fresh deliveries before this loop lags.
LAG_LOW = 0.002  # the loop came round within 2 ms: retries may start faster
LAG_HIGH = 0.005  # more than 5 ms behind: retries start at half the rate
RETRY_RATE_START = 100.0  # retries a worker starts per second at first
RETRY_RATE_FLOOR = 20.0  # and always, however busy (retries are never starved)
RETRY_RATE_STEP = 25.0  # what each look at a quick loop adds
# At most this many retries per claim while first attempts are coming in: a claim of 200 of
# a storm's retries runs long enough to hold up the fresh deliveries woken meanwhile (with
# 10, the healthy p99 under the benchmark's storm fell from 63-108 ms to 23-31 ms).
RETRY_CLAIM = 10
FRESH_SECONDS = 1.0  # a claim brought a first attempt this recently: fresh ones are coming


def retries_per_claim(wanted: int, holding_enough: bool, since_fresh: float) -> int:
    """How many of a claim of ``wanted`` may be retries: none while the worker holds a
    claim's worth already, few while first attempts came in the last ``FRESH_SECONDS``
    (``since_fresh`` seconds ago), else all (a backlog of retries or replays goes quickly)."""
    if holding_enough:
        return 0
    if since_fresh < FRESH_SECONDS:
        return min(wanted, RETRY_CLAIM)
    return wanted


def retry_rate_after(rate: float, lag: float, held_back: bool) -> float:
    """Scheduled retries started per second after the event loop was seen ``lag`` seconds
    late, ``held_back`` saying whether retries waited for the rate meanwhile (a rate that
    was not the limit is not raised)."""
    if lag > LAG_HIGH:
        return max(RETRY_RATE_FLOOR, rate / 2)
    if lag < LAG_LOW and held_back:
        return rate + RETRY_RATE_STEP
    return max(RETRY_RATE_FLOOR, rate)
