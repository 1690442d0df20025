"""Retention: a worker's pruning of finished deliveries, every ``prune_interval_seconds``."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from .clock import utcnow
from .config import Settings
from .store import WorkQueue

log = logging.getLogger("dispatcher.worker")


async def prune_every(queue: WorkQueue, settings: Settings) -> None:
    """Until cancelled: every ``prune_interval_seconds``, remove finished deliveries older
    than ``retention_days`` (failed ones are kept until replayed or pruned explicitly)."""
    while True:
        await asyncio.sleep(settings.prune_interval_seconds)
        cutoff = utcnow() - timedelta(days=settings.retention_days)
        try:
            counts = await queue.prune(cutoff)
            log.info("pruned %s", counts)
        except Exception as exc:
            log.warning("pruning failed (%s); next time", type(exc).__name__)
