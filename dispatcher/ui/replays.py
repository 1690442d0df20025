"""Bulk replays started from the dashboard: run in the background, with their progress.

Kept in the memory of the API process that started them (the last ``KEEP``); the replay
itself is the store's, batch by batch, so a process that stops mid-way leaves every
delivery either replayed or untouched.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from ..clock import utcnow
from ..store import DeliveryFilter, Store

log = logging.getLogger("dispatcher.ui")
KEEP = 50
BATCH = 200  # deliveries per transaction: the progress bar's step


@dataclass
class ReplayJob:
    id: str
    filter: DeliveryFilter
    total: int  # matches counted when it was confirmed
    started_at: datetime = field(default_factory=utcnow)
    looked_at: int = 0
    replayed: int = 0
    finished: bool = False
    error: str | None = None
    task: asyncio.Task[None] | None = None

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return min(99, int(100 * self.looked_at / self.total)) if self.total else 0


class ReplayJobs:
    def __init__(self) -> None:
        self._jobs: OrderedDict[str, ReplayJob] = OrderedDict()

    def get(self, job_id: str) -> ReplayJob | None:
        return self._jobs.get(job_id)

    def start(self, store: Store, f: DeliveryFilter, total: int) -> ReplayJob:
        job = ReplayJob("rpl_" + secrets.token_hex(8), f, total)
        self._jobs[job.id] = job
        while len(self._jobs) > KEEP:
            self._jobs.popitem(last=False)
        job.task = asyncio.create_task(self._run(store, job), name=f"replay {job.id}")
        return job

    async def _run(self, store: Store, job: ReplayJob) -> None:
        def progress(n: int) -> None:
            job.looked_at += n

        try:
            job.replayed = await store.replay(job.filter, batch=BATCH, progress=progress)
            log.info("dashboard: replay %s done", job.id, extra={"replayed": job.replayed})
        except Exception as exc:  # shown on the progress page; the log has the rest
            log.exception("replay %s failed", job.id)
            job.error = f"{type(exc).__name__}: the replay stopped; see the server log"
        finally:
            job.finished = True
