"""The delivery loop: claim due deliveries, send them, record what happened.

Plain asyncio and the store's queue (``WorkQueue``, all it knows of the store): ``dispatcher
serve`` runs it beside the API in one event loop, ``dispatcher worker`` runs it alone. At
most ``concurrency`` attempts are in flight; each finished attempt goes to a recorder that
writes attempts in batches, one transaction each.
A delivery counts as done only once its attempt is committed; if the process dies first,
the lease runs out and another worker sends it again (at least once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import httpx

from . import metrics, tracing
from .clock import utcnow
from .config import Settings, lease_for
from .due import DueMemory
from .held_retries import HeldRetries, follow_the_loop
from .outage import describe, is_database_away
from .pacing import FRESH_SECONDS, SLOW_SECONDS, retries_per_claim
from .policy import Outcome, Policies, RetryPolicy, delivery_after, parse_retry_after
from .recorder import MAX_BACKOFF_SECONDS, Recorder
from .retention import prune_every
from .sender import SEQUENCE_HEADER, send
from .slots import Slots
from .store import AttemptRecord, Job, WorkQueue
from .vocabulary import AttemptOutcome, DeliveryStatus

log = logging.getLogger("dispatcher.worker")


class Worker:
    def __init__(
        self, queue: WorkQueue, client: httpx.AsyncClient, settings: Settings,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.queue = queue
        self.client = client
        self.settings = settings
        self.policy = policy or RetryPolicy(settings.retry_schedule, settings.retry_jitter)
        self._policies = Policies(self.policy, settings.retry_jitter)
        # Leases follow the longest attempt deadline this worker has claimed for.
        self._longest_timeout = settings.delivery_timeout_seconds
        self.owner = f"wrk_{uuid.uuid4().hex[:16]}"
        self.loop = asyncio.get_running_loop()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Claimed deliveries not started yet, and each subscription's share of the slots.
        self._slots = Slots(settings.worker_concurrency, settings.max_in_flight_per_subscription)
        self._room = asyncio.Event()  # set when there is room to claim more
        self._retries = HeldRetries(self.loop.time())  # claimed, not yet let start
        self.leased: set[str] = set()  # claimed by this worker, attempt not yet recorded
        self._rate_blocked: dict[str, float] = {}  # subscription -> monotonic time
        self._stopping = asyncio.Event()
        self._due = DueMemory(settings.poll_interval_seconds)
        self._recorder = Recorder(queue, self.owner, settings.disable_after_seconds,
                                  self.leased, self._stopping, self._retries_committed)
        self._fresh_at = -FRESH_SECONDS  # when a claim last brought a first attempt

    async def run(self) -> None:
        """Deliver until ``stop()``; then finish what is in flight and record it."""
        recorder = asyncio.create_task(self._recorder.run(), name="recorder")
        renewer = asyncio.create_task(self._renew_loop(), name="lease-renewer")
        pruner = asyncio.create_task(prune_every(self.queue, self.settings), name="pruner")
        watcher = asyncio.create_task(self._watch_loop(), name="slow-watcher")
        pacer = asyncio.create_task(follow_the_loop(self._retries, self._start_ready),
                                    name="retry-pacer")
        try:
            await self._claim_loop()
        finally:
            pruner.cancel()
            watcher.cancel()
            pacer.cancel()
            await self._give_back_ready()
            await self._finish_in_flight()
            self._stopping.set()
            await self._recorder.join()
            for task in (recorder, renewer):
                task.cancel()
            await asyncio.gather(recorder, renewer, pruner, watcher, pacer,
                                 return_exceptions=True)

    async def _give_back_ready(self) -> None:
        """Claimed ahead but not started: due again at once, for any worker."""
        ids = self._slots.drain() + self._retries.drain()
        if not ids:
            return
        try:
            await self.queue.release_leases(self.owner, ids)
            self.leased.difference_update(ids)
        except Exception as exc:
            log.warning("could not give back %d leases (%s); they will expire",
                        len(ids), type(exc).__name__)

    async def _finish_in_flight(self) -> None:
        """Let started attempts finish within the grace period; cut off the rest (their
        deliveries are released below and sent again: at least once)."""
        if not self._in_flight:
            return
        grace = self.settings.shutdown_grace_seconds
        log.info("stopping: waiting up to %g s for %d attempts in flight",
                 grace, len(self._in_flight))
        _, late = await asyncio.wait(set(self._in_flight), timeout=grace)
        if late:
            log.warning("stopping: %d attempts did not finish within %g s", len(late), grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()
        self._room.set()
        self.queue.wake()

    @property
    def _prefetch(self) -> int:
        """Deliveries claimed ahead of free slots, so that a finished attempt is followed
        by the next at once, not after a round trip to the database."""
        return self.settings.claim_batch_size

    @property
    def _low_water(self) -> int:
        """Claim again once this much room is free: half the look-ahead, so claims come in
        batches."""
        return max(1, self._prefetch // 2)

    def _room_left(self) -> int:
        # Held retries are left out: they must not keep fresh deliveries from being claimed.
        return (self.settings.worker_concurrency + self._prefetch
                - self._slots.in_flight - self._slots.waiting)

    async def _claim_loop(self) -> None:
        settings = self.settings
        failures = 0
        while not self._stopping.is_set():
            room = self._room_left()
            if room < self._low_water:
                self._room.clear()
                await self._room.wait()
                continue
            wanted = min(room, settings.claim_batch_size)
            skip = self._skipped()
            most = retries_per_claim(wanted, len(self._retries) >= self._prefetch,
                                     time.monotonic() - self._fresh_at)
            try:
                jobs = await self.queue.claim_due(
                    self.owner, wanted, lease_for(self._longest_timeout), sorted(skip),
                    most_retries=most)
                self._longest_timeout = max(
                    [self._longest_timeout, *(j.timeout for j in jobs if j.timeout)])
                claimed = len(jobs)
                firsts = [job for job in jobs if job.number == 1]
                fresh = len(firsts)
                if firsts:
                    self._fresh_at = time.monotonic()
                    wall = utcnow()
                    self._retries.fresh_claimed([(wall - job.due_at).total_seconds()
                                                 for job in firsts if job.due_at])
                # A claim full of retries may have left more due: claim again at once.
                more = 0 < most < wanted and claimed - fresh >= most
                if claimed:
                    metrics.count_claim(claimed)
                jobs = await self._admit(jobs)
            except Exception as exc:
                delay = min(settings.poll_interval_seconds * 2 ** min(failures, 10),
                            MAX_BACKOFF_SECONDS)
                failures += 1
                if is_database_away(exc):
                    log.warning("database not answering (%s); claiming again in %.1f s",
                                describe(exc), delay)
                else:
                    log.exception("claiming deliveries failed; trying again in %.1f s", delay)
                await self.queue.wait_for_work(delay)
                continue
            failures = 0
            self.leased.update(job.delivery_id for job in jobs)
            self._slots.add([job for job in jobs if not job.paced])
            self._retries.hold([job for job in jobs if job.paced])
            self._start_ready()
            if claimed < wanted and not more:
                await self.queue.wait_for_work(
                    await self._idle_seconds(self._skipped(), retries=most > 0))

    def _start_ready(self) -> None:
        self._hand_over_retries()
        while not self._stopping.is_set() and (
                job := self._slots.take(time.monotonic())) is not None:
            task = asyncio.create_task(self._attempt(job))
            self._in_flight.add(task)
            task.add_done_callback(functools.partial(self._finished, job=job))

    def _hand_over_retries(self) -> None:
        """Held retries to the slots, as many as their rate lets start now."""
        held = len(self._retries)
        if not held:
            return  # the common case, after every attempt: nothing more to do
        self._slots.add(self._retries.release(self.loop.time()))
        if held >= self._prefetch > len(self._retries):
            self.queue.wake()  # the claim may take retries again

    def _finished(self, task: asyncio.Task[None], job: Job) -> None:
        self._in_flight.discard(task)
        claimable = self._slots.finished(job, time.monotonic())
        self._start_ready()
        if claimable:
            self.queue.wake()  # that subscription may be claimed again
        if self._room_left() >= self._low_water:
            self._room.set()

    def _skipped(self) -> set[str]:
        """Subscriptions this worker should not claim for just now: a cap's worth of their
        deliveries is parked here already, or they are over their rate limit."""
        now = time.monotonic()
        for sub_id in [s for s, until in self._rate_blocked.items() if until <= now]:
            del self._rate_blocked[sub_id]
        return self._slots.full() | set(self._rate_blocked)

    async def _admit(self, jobs: list[Job]) -> list[Job]:
        """Keep the jobs within their subscriptions' rate limits; put the rest back until
        the next one-second window (no retry used)."""
        by_sub: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            if job.rate_limit:
                by_sub[job.subscription_id].append(job)
        if not by_sub:
            return jobs
        wall = time.time()
        refused: set[str] = set()
        for sub_id, group in by_sub.items():
            granted = await self.queue.take_tokens(
                sub_id, len(group), group[0].rate_limit or 0, int(wall))
            if granted < len(group):
                refused.update(j.delivery_id for j in group[granted:])
                self._rate_blocked[sub_id] = time.monotonic() + (1 - wall % 1)
        if not refused:
            return jobs
        when = datetime.fromtimestamp(int(wall) + 1, UTC)
        await self.queue.defer(self.owner, sorted(refused), when)
        self._due.forget()
        return [j for j in jobs if j.delivery_id not in refused]

    def _retries_committed(self) -> None:
        self._due.forget()  # the last reading may not have seen them
        self.queue.wake()  # one may be due soon

    async def _idle_seconds(self, skip: set[str], *, retries: bool = True) -> float:
        """Until the next retry comes due (the next first attempt, without ``retries``) or a
        rate window opens, at most the poll interval."""
        poll = self.settings.poll_interval_seconds
        if self._rate_blocked:
            poll = min(poll, max(0.0, min(self._rate_blocked.values()) - time.monotonic()))
        skipped = frozenset(skip)
        known, due = self._due.recall(retries=retries, skip=skipped, now=utcnow(),
                                      monotonic=time.monotonic())
        if not known:
            begun = self._due.forgotten
            try:
                due = await self.queue.next_due_at(sorted(skip), retries=retries)
            except Exception:
                return poll
            self._due.remember(due, retries=retries, skip=skipped, monotonic=time.monotonic(),
                               begun=begun)
        if due is None:
            return poll
        return min(poll, max(0.0, (due - utcnow()).total_seconds()) + 0.001)

    async def _attempt(self, job: Job) -> None:
        try:
            await self._attempt_and_queue(job)
        except Exception:
            # Not recorded: the lease runs out and the delivery is attempted again.
            self.leased.discard(job.delivery_id)
            log.exception("attempt of delivery %s failed inside dispatcher", job.delivery_id,
                          extra={"delivery_id": job.delivery_id, "event_id": job.event_id,
                                 "subscription_id": job.subscription_id})

    async def _attempt_and_queue(self, job: Job) -> None:
        with tracing.attempt_span(job):
            response = await send(
                self.client, job.url, job.event_id, job.payload, job.keys,
                job.headers if job.sequence is None
                else job.headers | {SEQUENCE_HEADER: str(job.sequence)},
                job.timeout or self.settings.delivery_timeout_seconds,
            )
        now = utcnow()
        outcome = Outcome(response.status_code, parse_retry_after(response.retry_after, now),
                          response.blocked)
        step = self._policies.of(job.retry_schedule).next_step(job.round_number, outcome)
        status, next_at = delivery_after(step, now, job.resume_status, job.resume_at)
        await self._recorder.put(
            AttemptRecord(
                job=job,
                started_at=response.started_at,
                duration_ms=response.duration_ms,
                status_code=response.status_code,
                response_body=response.body,
                error=response.error,
                outcome=AttemptOutcome.SUCCEEDED if step.status == DeliveryStatus.SUCCEEDED
                else AttemptOutcome.FAILED,
                status=status,
                next_attempt_at=next_at,
                gone=step.gone,
            )
        )

    async def _watch_loop(self) -> None:
        """Slow attempts found while still running (``Slots.mark_slow``)."""
        while True:
            await asyncio.sleep(SLOW_SECONDS / 2)
            self._slots.mark_slow(time.monotonic())

    async def _renew_loop(self) -> None:
        """Extend this worker's leases a third of the way through, while it lives."""
        while True:
            lease = lease_for(self._longest_timeout)
            await asyncio.sleep(lease / 3)
            try:
                await self.queue.extend_leases(self.owner, list(self.leased),
                                               lease_for(self._longest_timeout))
            except Exception as exc:
                log.warning("could not extend leases (%s)", describe(exc))
