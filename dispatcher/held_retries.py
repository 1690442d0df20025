"""Scheduled retries a worker has claimed and holds until they may start: a token bucket
whose rate ``pacing.retry_rate_after`` sets from the event loop's lag and from how late first
attempts are claimed, so that a retry storm yields the machine to first attempts.
``HeldRetries`` has no I/O and no clock of its own (the worker passes its loop's time in);
``follow_the_loop`` looks at the lag.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import deque
from collections.abc import Callable

from .pacing import RETRY_RATE_START, retry_rate_after
from .store import Job

BURST_SECONDS = 0.05  # retries may start in bursts of this many seconds' worth
# The event loop's lag: the median of LAG_PROBES sleeps this long (one late wake-up may be
# the machine's, not this loop's).
LAG_PROBE_SECONDS = 0.01
LAG_PROBES = 5
LEAST_OF = 200  # looks (10 s of them) whose least fresh lateness is the usual


class HeldRetries:
    def __init__(self, now: float) -> None:
        self._held: deque[Job] = deque()
        self.rate = RETRY_RATE_START
        self._tokens = 1.0
        self._tokens_at = now
        self._held_back = False  # retries waited for tokens since the last look at the lag
        # How late first attempts were claimed (seconds after due): since the last look,
        # and the least of the recent ones (a clock offset between machines cancels out).
        self._late: list[float] = []
        self._least: deque[float] = deque(maxlen=LEAST_OF)

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, jobs: list[Job]) -> None:
        self._held.extend(jobs)

    def release(self, now: float) -> list[Job]:
        """The held retries that may start now, oldest first, as many as there are tokens."""
        if not self._held:
            return []
        rate = self.rate
        self._tokens = min(max(1.0, rate * BURST_SECONDS),
                           self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        released = []
        while self._held and self._tokens >= 1:
            released.append(self._held.popleft())
            self._tokens -= 1
        if self._held:
            self._held_back = True
        return released

    def fresh_claimed(self, late: list[float]) -> None:
        """First attempts were claimed ``late`` seconds after they came due."""
        self._late += late

    def looked(self, lag: float) -> None:
        """The event loop was seen ``lag`` seconds late: the rate from now on. First
        attempts claimed later than usual since the last look count as lag too: a storm
        that keeps the machine's other processes (the database, the API) busy delays fresh
        deliveries without this loop falling behind."""
        if self._late:
            median = statistics.median(self._late)
            self._least.append(min(self._late))
            lag = max(lag, median - min(self._least))
            self._late = []
        self.rate = retry_rate_after(self.rate, lag, self._held_back)
        self._held_back = False

    def drain(self) -> list[str]:
        """Forget every held retry; their delivery ids (to give back)."""
        ids = [job.delivery_id for job in self._held]
        self._held.clear()
        return ids


async def follow_the_loop(retries: HeldRetries, start_ready: Callable[[], None]) -> None:
    """Until cancelled: the retries' rate after each look at how late the event loop comes
    round, and ``start_ready()`` after each probe, so held retries start as tokens come."""
    loop = asyncio.get_running_loop()
    while True:
        lags = []
        for _ in range(LAG_PROBES):
            start = loop.time()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            lags.append(loop.time() - start - LAG_PROBE_SECONDS)
            start_ready()
        retries.looked(statistics.median(lags))
