"""The delivery core without FastAPI: store + worker + the shared client, driven directly."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

from dispatcher.database import open_database
from dispatcher.store import Store, WorkQueue
from dispatcher.transport import make_http_client
from dispatcher.worker import Worker

from .harness import Receiver, Reply


async def deliver_all(settings, subscription: dict[str, Any], events: int,
                      narrow: bool = False) -> list[dict]:
    """Store ``events`` events for one subscription, run a worker until none is pending
    (``narrow``: a worker that sees the store through ``WorkQueue`` alone)."""
    store = Store(open_database(settings))
    client = make_http_client(settings)
    sub = await store.create_subscription("key_test", subscription)
    for i in range(events):
        await store.accept_event("key_test", "thing.happened", {"i": i}, None, 60)
    worker = Worker(OnlyTheQueue(store) if narrow else store, client, settings)
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(20):
            while True:
                page = await store.list_deliveries(None, subscription_id=sub["id"], limit=500)
                if sum(d["status"] != "pending" for d in page.rows) == events:
                    break
                await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await task
        await client.aclose()
    attempts = []
    for delivery in page.rows:
        attempts += (await store.list_attempts(delivery["id"], None, None, 100, "asc")).rows
    await store.db.dispose()
    return attempts


@contextlib.asynccontextmanager
async def working(store: Store, client: Any, settings: Any, queue: Any = None
                  ) -> AsyncIterator[Worker]:
    """A worker running on ``queue`` (default: the store) until the block ends; then it is
    stopped, and the client and the store's engine are closed."""
    worker = Worker(store if queue is None else queue, client, settings)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await task
        await client.aclose()
        await store.db.dispose()


async def until(done: Any, seconds: float = 10) -> None:
    """Poll ``done()`` every 10 ms, for at most ``seconds``."""
    async with asyncio.timeout(seconds):
        while not done():  # noqa: ASYNC110 - a condition in another thread: polled
            await asyncio.sleep(0.01)


class OnlyTheQueue:
    """The store as the worker may see it: the members of ``WorkQueue``, nothing else."""

    MEMBERS = frozenset(name for name in vars(WorkQueue) if not name.startswith("_"))

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name not in self.MEMBERS:
            raise AttributeError(f"the worker reached past WorkQueue for {name!r}")
        return getattr(self._store, name)


def test_the_worker_needs_only_the_work_queue(make_settings):
    settings = make_settings(worker_concurrency=4, claim_batch_size=2, retry_schedule=(0.05,))

    seen: set[str] = set()

    def first_try_fails(n: int, request) -> Reply:  # so that retries wait for their time
        event_id = request.headers["webhook-id"]
        if event_id in seen:
            return Reply(200)
        seen.add(event_id)
        return Reply(500)

    with Receiver(first_try_fails) as receiver:
        attempts = asyncio.run(deliver_all(settings, {"url": receiver.url}, 6, narrow=True))
    assert sorted(a["outcome"] for a in attempts) == ["failed"] * 6 + ["succeeded"] * 6
    assert {"claim_due", "record_attempts", "wait_for_work", "wake"} <= OnlyTheQueue.MEMBERS


def test_worker_delivers_without_the_api(make_settings):
    settings = make_settings(worker_concurrency=8, claim_batch_size=4)
    seen: set[str] = set()

    def first_try_fails(n: int, request) -> Reply:
        event_id = request.headers["webhook-id"]
        fresh = event_id not in seen
        seen.add(event_id)
        return Reply(500 if fresh and n % 2 else 200)

    with Receiver(first_try_fails) as receiver:
        attempts = asyncio.run(deliver_all(settings, {"url": receiver.url}, 30))
        assert len(set(receiver.ids())) == 30
    assert len(attempts) == receiver.count() > 30
    assert sum(a["outcome"] == "succeeded" for a in attempts) == 30


def test_the_delivery_core_does_not_import_fastapi():
    code = ("import sys, dispatcher.worker, dispatcher.sender, dispatcher.store, "
            "dispatcher.service; print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "fastapi" not in {m.split(".")[0] for m in out.split()}


def test_an_attempt_that_cannot_even_be_sent_is_recorded_not_stuck(make_settings):
    # Headers the API would refuse (not ASCII) can still be in an old row: the attempt must
    # be recorded as failed, never leave the delivery leased with no attempt.
    settings = make_settings(retry_schedule=(), http_transport="httpx")
    sub = {"url": "http://127.0.0.1:9/x", "headers": {"x-team": "équipe"}}
    [attempt] = asyncio.run(deliver_all(settings, sub, 1))
    assert attempt["status_code"] is None and attempt["outcome"] == "failed"
    assert attempt["error"].startswith("the request could not be sent")


def test_recording_the_same_batch_twice_changes_nothing(make_settings, database_url):
    # A commit whose answer is lost with the connection makes the recorder write the same
    # batch again: that must neither fail nor count twice.
    from dispatcher.clock import utcnow
    from dispatcher.store import AttemptRecord

    from .databases import scalar

    async def scenario() -> None:
        store = Store(open_database(make_settings()))
        try:
            await store.create_subscription("key_x", {"url": "http://127.0.0.1:9/x"})
            await store.accept_event("key_x", "a.b", {}, None, 60)
            [job] = await store.claim_due("wrk_test", 10, 60)
            record = AttemptRecord(job=job, started_at=utcnow(), duration_ms=5,
                                   status_code=200, response_body="ok", error=None,
                                   outcome="succeeded", status="succeeded",
                                   next_attempt_at=None)
            await store.record_attempts("wrk_test", [record])
            await store.record_attempts("wrk_test", [record])
        finally:
            await store.db.dispose()

    asyncio.run(scenario())
    assert scalar(database_url, "SELECT count(*) FROM attempt") == 1
    assert scalar(database_url, "SELECT attempts FROM delivery") == 1


def test_receivers_cookies_are_never_sent_back(make_settings):
    # A receiver's Set-Cookie must not ride along on later deliveries (the client keeps no
    # cookies), and no Accept-Encoding invites bodies that are never decompressed.
    settings = make_settings(worker_concurrency=1, claim_batch_size=1)
    reply = Reply(headers={"set-cookie": "session=abc; Path=/"})
    for transport in ("aiohttp", "httpx"):
        with Receiver(lambda n, r: reply) as receiver:
            attempts = asyncio.run(deliver_all(
                settings.model_copy(update={"http_transport": transport}),
                {"url": receiver.url}, 3))
            assert len(attempts) == 3 and receiver.count() == 3
            for request in receiver.requests:
                assert "cookie" not in request.headers, transport
                assert "accept-encoding" not in request.headers, transport


def test_deliveries_claimed_ahead_are_given_back_when_the_worker_stops(make_settings,
                                                                      database_url):
    # Two slots and batches of 10: one claim leases 10, two start, eight wait. On stop the
    # two in flight finish and are recorded, the eight waiting are released at once (due
    # for any worker), and none is lost.
    from .databases import scalar

    settings = make_settings(worker_concurrency=2, claim_batch_size=10,
                             max_in_flight_per_subscription=100, shutdown_grace_seconds=10)

    async def scenario(receiver: Receiver) -> int:
        store = Store(open_database(settings))
        client = make_http_client(settings)
        await store.create_subscription("key_x", {"url": receiver.url})
        for i in range(20):
            await store.accept_event("key_x", "a.b", {"i": i}, None, 60)
        async with working(store, client, settings) as worker:
            await until(lambda: receiver.count() >= 2)
            return len(worker.leased)

    with Receiver(lambda n, r: Reply(delay=0.5)) as receiver:
        leased = asyncio.run(scenario(receiver))
        assert leased == 10  # 2 in flight + 8 claimed ahead
        assert receiver.count() == 2
    assert scalar(database_url, "SELECT count(*) FROM delivery WHERE status = 'succeeded'") == 2
    assert scalar(database_url, "SELECT count(*) FROM delivery WHERE status = 'pending' "
                  "AND lease_owner IS NULL AND lease_until IS NULL") == 18
    assert scalar(database_url, "SELECT count(*) FROM attempt") == 2


class Watched(OnlyTheQueue):
    """The work queue, counting what the worker claims and hands back."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.claimed = 0
        self.deferred = 0

    async def claim_due(self, *args: Any, **kwargs: Any) -> list:
        jobs = await self._store.claim_due(*args, **kwargs)
        self.claimed += len(jobs)
        return jobs

    async def defer(self, owner: str, ids: Any, until: Any) -> None:
        self.deferred += len(ids)
        await self._store.defer(owner, ids, until)


def test_a_busy_fast_subscription_opens_past_the_base_cap_and_nothing_is_claimed_twice(
        make_settings):
    """One subscription, 300 deliveries, a receiver answering in 20 ms: once it has shown
    itself fast it gets more than the base cap of 4 in flight, and claimed-ahead rows wait
    in the worker (each claimed once, none handed back)."""
    settings = make_settings(worker_concurrency=64, max_in_flight_per_subscription=4,
                             claim_batch_size=50)
    events = 300

    async def run(url: str) -> Watched:
        store = Store(open_database(settings))
        client = make_http_client(settings)
        sub = await store.create_subscription("key_test", {"url": url})
        for i in range(events):
            await store.accept_event("key_test", "thing.happened", {"i": i}, None, 60)
        queue = Watched(store)
        async with working(store, client, settings, queue):
            async with asyncio.timeout(30):
                while True:
                    page = await store.list_deliveries(
                        None, subscription_id=sub["id"], status="succeeded", limit=500)
                    if len(page.rows) == events:
                        break
                    await asyncio.sleep(0.05)
        return queue

    with Receiver(lambda n, r: Reply(delay=0.02)) as receiver:
        queue = asyncio.run(run(receiver.url))
        arrived = sorted(r.at for r in receiver.requests)
    assert queue.claimed == events and queue.deferred == 0
    # In flight at each arrival: the requests that arrived within the 20 ms before it.
    peak = max(sum(1 for t in arrived[max(0, i - 64):i + 1] if at - t < 0.02)
               for i, at in enumerate(arrived))
    assert peak > 8, peak


def test_the_client_raises_the_open_files_limit_to_fit_its_connections(make_settings):
    """A process started at the common soft limit of 1,024 open files still fits the
    default pool (1,000 connections) beside the database's and the API's files."""
    code = ("import resource; "
            "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit("
            "resource.RLIMIT_NOFILE)[1])); "
            "from dispatcher.config import Settings; "
            "from dispatcher.transport import make_http_client; "
            "make_http_client(Settings()); "
            "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert int(out) == min(1000 + 512, hard) > 1024 or hard <= 1024


async def _storm_due(settings, storm_url: str, healthy_url: str) -> tuple[Store, Any]:
    """A store with 300 deliveries to ``storm_url`` failed once and due again now, and a
    subscription of ``healthy_url`` for fresh events; and an HTTP client."""
    import sqlalchemy as sa

    from dispatcher.models import delivery_table

    store = Store(open_database(settings))
    await store.create_subscription("key_test", {"url": storm_url, "event_types": ["storm.*"]})
    await store.create_subscription("key_test", {"url": healthy_url,
                                                 "event_types": ["fresh.*"]})
    for i in range(300):
        await store.accept_event("key_test", "storm.failed", {"i": i}, None, 60)
    async with store.engine.begin() as conn:
        await conn.execute(sa.update(delivery_table).values(attempts=1))
    return store, make_http_client(settings)


def test_fresh_deliveries_are_not_held_behind_a_retry_storm(make_settings):
    """300 retries due at once for a receiver answering 503 in 50 ms (8 slots: about 2 s of
    work), then 5 events for a healthy subscription: those arrive within a claim or two,
    long before the storm is through."""


    settings = make_settings(worker_concurrency=8, max_in_flight_per_subscription=8,
                             claim_batch_size=16)

    async def run(storm_url: str, healthy_url: str, storm: Receiver) -> int:
        store, client = await _storm_due(settings, storm_url, healthy_url)
        async with working(store, client, settings) as worker:
            await until(lambda: storm.count() >= 20)  # the storm is under way
            for i in range(5):
                await store.accept_event("key_test", "fresh.event", {"i": i}, None, 60)
            worker.queue.wake()
            await until(lambda: healthy.count() >= 5)
            return storm.count()

    with Receiver(lambda n, r: Reply(503, delay=0.05)) as storm, Receiver() as healthy:
        storm_seen = asyncio.run(run(storm.url, healthy.url, storm))
    assert storm_seen < 150, storm_seen  # the fresh ones did not wait for the storm


def test_retries_yield_to_first_attempts_while_the_event_loop_is_behind(make_settings):
    """300 retries due at once for a receiver answering 503 at once, while something else
    keeps the worker's event loop 25 ms late out of every 26: the retries start at the
    paced rate (about 20 a second, not all 300), fresh events still go at once, and once
    the loop is quick again the rest of the storm goes through (not starved)."""
    import time


    settings = make_settings(worker_concurrency=100, retry_schedule=(60.0, 120.0))

    async def hog(stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Longer than a lag probe's sleep and LAG_HIGH together: every probe sees it,
            # whatever its phase (12 ms here once locked in step with the probes, seen 2 ms late).
            until_ = time.perf_counter() + 0.025
            while time.perf_counter() < until_:
                pass
            await asyncio.sleep(0.001)

    async def run(storm: Receiver, healthy: Receiver) -> tuple[int, float]:
        store, client = await _storm_due(settings, storm.url, healthy.url)
        stop_hogging = asyncio.Event()
        hogging = asyncio.create_task(hog(stop_hogging))
        async with working(store, client, settings) as worker:
            await asyncio.sleep(2)
            while_behind = storm.count()
            for i in range(5):
                await store.accept_event("key_test", "fresh.event", {"i": i}, None, 60)
            sent = time.perf_counter()
            worker.queue.wake()
            await until(lambda: healthy.count() >= 5)
            fresh_seconds = time.perf_counter() - sent
            stop_hogging.set()
            await hogging
            await until(lambda: storm.count() >= 300, seconds=30)
        return while_behind, fresh_seconds

    with Receiver(lambda n, r: Reply(503)) as storm, Receiver() as healthy:
        while_behind, fresh_seconds = asyncio.run(run(storm, healthy))
    assert 10 <= while_behind <= 120, while_behind  # paced, not stopped, not all at once
    assert fresh_seconds < 1.5, fresh_seconds


class ClaimsSeen(OnlyTheQueue):
    """The work queue, keeping each claim's ``most_retries`` and the retries it brought."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.claims: list[tuple[int | None, int, int]] = []  # (most_retries, retries, fresh)

    async def claim_due(self, *args: Any, **kwargs: Any) -> list:
        jobs = await self._store.claim_due(*args, **kwargs)
        self.claims.append((kwargs.get("most_retries"), sum(j.number > 1 for j in jobs),
                            sum(j.number == 1 for j in jobs)))
        return jobs


def test_claims_take_few_retries_while_fresh_deliveries_come_in(make_settings):
    """300 retries due: with nothing fresh, a claim takes a whole batch of them; once fresh
    events come in, each claim takes at most RETRY_CLAIM retries (a long claim would hold
    the fresh ones up), and the retries all go through all the same."""

    from dispatcher.pacing import RETRY_CLAIM

    settings = make_settings(claim_batch_size=50, retry_schedule=(60.0, 120.0))

    async def run(storm: Receiver, healthy: Receiver) -> ClaimsSeen:
        store, client = await _storm_due(settings, storm.url, healthy.url)
        seen = ClaimsSeen(store)
        worker = Worker(seen, client, settings)
        running = asyncio.create_task(worker.run())
        try:
            await until(lambda: storm.count() >= 1)
            for i in range(40):  # fresh events for 2 s
                await store.accept_event("key_test", "fresh.event", {"i": i}, None, 60)
                worker.queue.wake()
                await asyncio.sleep(0.05)
            await until(lambda: storm.count() >= 300 and healthy.count() >= 40, seconds=30)
        finally:
            worker.stop()
            await running
            await client.aclose()
            await store.db.dispose()
        return seen

    with Receiver(lambda n, r: Reply(503)) as storm, Receiver() as healthy:
        seen = asyncio.run(run(storm, healthy))
    claims = seen.claims
    assert claims[0] == (50, 50, 0), claims[:3]  # nothing fresh yet: a whole claim
    fresh_at = [i for i, c in enumerate(claims) if c[2]]
    while_fresh = [c for c in claims[fresh_at[0] + 1:fresh_at[-1]] if c[0]]
    assert while_fresh, claims  # retries were claimed meanwhile
    assert all(most == RETRY_CLAIM and retries <= RETRY_CLAIM
               for most, retries, _ in while_fresh), while_fresh
