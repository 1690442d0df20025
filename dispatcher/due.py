"""When the next delivery comes due, as a worker last read it.

An idle worker sleeps until then (at most the poll interval). At a steady trickle of events
it goes idle after nearly every claim, and reading the time costs two queries each time
(at 200 events/s, a fifth of its CPU went there); so it keeps the reading, forgets it when it
commits rows due later itself, and reads again once the reading is as old as the longest
sleep.
Rows that other processes schedule for later are found, as before, by the claim that
follows every wake-up and every poll.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class DueReading:
    """``due``: the soonest next attempt found (None: none), read at monotonic ``read_at``
    with retries included or not and the subscriptions in ``skip`` left out."""

    due: datetime | None
    retries: bool
    skip: frozenset[str]
    read_at: float


def still_holds(reading: DueReading | None, *, retries: bool, skip: frozenset[str],
                now: datetime, monotonic: float, memory: float) -> bool:
    """Whether ``reading`` may stand for a new one: it covers the lanes asked for (a reading
    with retries is never later than one without), left out no subscription that is now
    claimable (it may have sooner rows), is younger than ``memory`` seconds, and has not
    come due (a time that came and found nothing to claim is read again)."""
    return (reading is not None
            and (reading.retries or not retries)
            and reading.skip <= skip
            and monotonic - reading.read_at < memory
            and (reading.due is None or reading.due > now))


class DueMemory:
    """A worker's last reading of the next due time, for ``memory`` seconds at most."""

    def __init__(self, memory: float) -> None:
        self.memory = memory
        self.forgotten = 0  # how many times forgotten: a reading begun before one is stale
        self._reading: DueReading | None = None

    def recall(self, *, retries: bool, skip: frozenset[str], now: datetime,
               monotonic: float) -> tuple[bool, datetime | None]:
        """(whether the last reading still holds, its due time)."""
        reading = self._reading
        if still_holds(reading, retries=retries, skip=skip, now=now, monotonic=monotonic,
                       memory=self.memory):
            assert reading is not None
            return True, reading.due
        return False, None

    def remember(self, due: datetime | None, *, retries: bool, skip: frozenset[str],
                 monotonic: float, begun: int) -> None:
        """Keep a reading begun when ``forgotten`` was ``begun``, unless forgotten since."""
        if begun == self.forgotten:
            self._reading = DueReading(due, retries, skip, monotonic)

    def forget(self) -> None:
        """This worker committed rows due later (a retry, a deferral): read again, since
        a reading begun before the commit may not have seen them."""
        self.forgotten += 1
        self._reading = None
