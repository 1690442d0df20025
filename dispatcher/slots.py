"""Which claimed delivery a worker starts next: its slots, and each subscription's share.

The worker claims deliveries ahead of its free slots (``add``) and asks for the next one to
start whenever a slot frees (``take``). A subscription at its cap (``pacing.in_flight_cap``)
keeps its claimed deliveries parked here, leased and in order, until one of its own attempts
finishes: never handed back to be claimed again. No I/O and no clock of its own: the worker
passes ``time.monotonic()`` in.
"""

from __future__ import annotations

from collections import Counter, deque

from .pacing import SLOW_SECONDS, in_flight_cap, streak_after
from .store import Job


class Slots:
    def __init__(self, concurrency: int, base_cap: int) -> None:
        self.concurrency = concurrency
        self.base_cap = base_cap
        self._started: dict[str, tuple[str, float]] = {}  # delivery -> (subscription, when)
        self._ready: deque[Job] = deque()  # claimed ahead, in the order claimed
        self._parked: dict[str, deque[Job]] = {}  # subscription -> waiting for its slot
        self._parked_count = 0
        self._unblocked: deque[str] = deque()  # subscriptions whose parked jobs may start
        self._full: set[str] = set()  # left out of claims: a cap's worth parked already
        self._running: Counter[str] = Counter()  # attempts in flight per subscription
        self._fast: dict[str, int] = {}  # subscription -> attempts in a row that were fast

    @property
    def in_flight(self) -> int:
        return len(self._started)

    @property
    def waiting(self) -> int:
        """Claimed and not started: ready or parked."""
        return len(self._ready) + self._parked_count

    def cap(self, sub_id: str) -> int:
        return in_flight_cap(self.base_cap, self.concurrency, self._fast.get(sub_id, 0))

    def add(self, jobs: list[Job]) -> None:
        self._ready.extend(jobs)

    def take(self, now: float) -> Job | None:
        """The next job to start now, counted in flight from ``now``; None when every slot
        is taken or nothing may start."""
        if len(self._started) >= self.concurrency:
            return None
        job = self._next()
        if job is not None:
            self._running[job.subscription_id] += 1
            self._started[job.delivery_id] = (job.subscription_id, now)
        return job

    def _next(self) -> Job | None:
        # Parked jobs whose subscription has a slot again first (they were due earlier).
        while self._unblocked:
            sub_id = self._unblocked[0]
            parked = self._parked.get(sub_id)
            if not parked or self._running[sub_id] >= self.cap(sub_id):
                self._unblocked.popleft()
                continue
            self._parked_count -= 1
            job = parked.popleft()
            if not parked:
                del self._parked[sub_id]
                self._unblocked.popleft()
            return job
        while self._ready:
            job = self._ready.popleft()
            sub_id = job.subscription_id
            parked = self._parked.get(sub_id)
            if parked is None and self._running[sub_id] < self.cap(sub_id):
                return job
            if parked is None:
                parked = self._parked[sub_id] = deque()
            parked.append(job)  # behind its subscription's earlier ones
            self._parked_count += 1
        return None

    def finished(self, job: Job, now: float) -> bool:
        """``job``'s attempt is over; True when its subscription may be claimed again (it
        was left out of claims and now has room)."""
        sub_id, started = self._started.pop(job.delivery_id)
        count = self._running[sub_id] - 1
        fast = streak_after(self._fast.get(sub_id, 0), now - started)
        parked = self._parked.get(sub_id)
        if count:
            self._running[sub_id] = count
        else:
            del self._running[sub_id]
        if count or parked:
            self._fast[sub_id] = fast
        else:
            self._fast.pop(sub_id, None)  # idle here: it starts from the base cap next time
        if parked:
            self._unblocked.append(sub_id)
        if sub_id in self._full and len(self._parked.get(sub_id, ())) < self.cap(sub_id):
            self._full.discard(sub_id)
            return True
        return False

    def full(self) -> set[str]:
        """Subscriptions a claim should leave out: a cap's worth of theirs is parked."""
        self._full = {s for s, parked in self._parked.items() if len(parked) >= self.cap(s)}
        return set(self._full)

    def mark_slow(self, now: float) -> None:
        """An attempt running for SLOW_SECONDS already marks its receiver slow, so one that
        stops answering gets no more slots than the base cap."""
        for sub_id, started in self._started.values():
            if now - started >= SLOW_SECONDS and self._fast.get(sub_id):
                self._fast[sub_id] = 0

    def drain(self) -> list[str]:
        """Forget every job not started; their delivery ids (to give back)."""
        ids = [job.delivery_id for job in self._ready]
        ids += [job.delivery_id for jobs in self._parked.values() for job in jobs]
        self._ready, self._parked, self._parked_count = deque(), {}, 0
        self._unblocked.clear()
        return ids
