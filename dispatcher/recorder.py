"""The worker's recorder: finished attempts written in batches, one transaction each.

An attempt counts only once recorded; a batch that cannot be written is tried again while
the database is away, and given up only when stopping (the leases are then given back and
the deliveries sent again: at least once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import metrics
from .outage import describe, is_database_away
from .store import AttemptRecord, WorkQueue
from .vocabulary import DeliveryStatus

log = logging.getLogger("dispatcher.worker")

RECORD_BATCH = 500
MAX_BACKOFF_SECONDS = 5.0  # the longest a worker waits between tries while the database is away


class Recorder:
    def __init__(self, queue: WorkQueue, owner: str, disable_after_seconds: float,
                 leased: set[str], stopping: asyncio.Event,
                 retries_committed: Callable[[], None]) -> None:
        self.queue = queue
        self.owner = owner
        self.disable_after_seconds = disable_after_seconds
        self.leased = leased  # the worker's: a recorded attempt's delivery leaves it
        self._stopping = stopping
        self._retries_committed = retries_committed  # the worker's: a retry may be due soon
        self._records: asyncio.Queue[AttemptRecord] = asyncio.Queue()

    async def put(self, record: AttemptRecord) -> None:
        await self._records.put(record)

    async def join(self) -> None:
        """Until everything queued so far is recorded (or given up)."""
        await self._records.join()

    async def run(self) -> None:
        """Record what is queued, in batches, until cancelled."""
        while True:
            batch = [await self._records.get()]
            while len(batch) < RECORD_BATCH and not self._records.empty():
                batch.append(self._records.get_nowait())
            try:
                await self._record(batch)
            finally:
                for _ in batch:
                    self._records.task_done()

    async def _record(self, batch: list[AttemptRecord]) -> None:
        delay, tries = 0.05, 0
        while True:
            try:
                await self.queue.record_attempts(
                    self.owner, batch, self.disable_after_seconds)
                self.leased.difference_update(r.job.delivery_id for r in batch)
                break
            except Exception as exc:
                tries += 1
                if self._stopping.is_set() and tries >= 5:
                    # Given up: the leases are released at exit and the deliveries sent again.
                    log.exception("could not record %d attempts", len(batch))
                    return
                if is_database_away(exc):
                    log.warning("database not answering (%s); recording %d attempts again "
                                "in %.1f s", describe(exc), len(batch), delay)
                else:
                    log.exception("recording %d attempts failed; trying again", len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        # Counted and logged once committed, so both match the stored attempts.
        metrics.count_attempts(batch)
        if log.isEnabledFor(logging.INFO):
            _log_attempts(batch)
        if any(r.status == DeliveryStatus.PENDING for r in batch):
            self._retries_committed()


def _log_attempts(batch: list[AttemptRecord]) -> None:
    """One line per attempt, with the ids it concerns; never the URL, headers or secrets
    (the subscription id names the target)."""
    for r in batch:
        job = r.job
        log.info(
            "attempt %d of %s: %s in %d ms, %s; delivery %s", job.number, job.delivery_id,
            "no answer" if r.status_code is None else r.status_code, r.duration_ms,
            r.outcome, r.status,
            extra={
                "event_id": job.event_id, "delivery_id": job.delivery_id,
                "subscription_id": job.subscription_id, "attempt_id": r.id,
                "number": job.number, "trigger": job.trigger, "status_code": r.status_code,
                "duration_ms": r.duration_ms, "outcome": r.outcome,
                "delivery_status": r.status, "next_attempt_at": r.next_attempt_at,
                "error": r.error,
            },
        )
