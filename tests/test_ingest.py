"""Ingest under load: concurrent events commit together, API keys are remembered.

``POST /v1/events`` is the hot path (benchmarks/ingest.py). Concurrent requests share one
transaction (``store.GroupCommit``), each answered only once its transaction committed.
The publisher's key is taken from the process's memory of live keys and checked again in
that transaction, so a key deleted through any process is refused from the next request
on, and a subscription made through any process gets the next event.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from dispatcher.database import open_database
from dispatcher.store import GroupCommit, KeyDeleted, Store, encode_payload

from .conftest import ADMIN_TOKEN
from .databases import scalar
from .harness import AppServer

# ---- GroupCommit, alone ------------------------------------------------------------------


class Recorder:
    """A ``commit`` for GroupCommit that records its groups; results are ``item * 2``,
    an exception for items in ``refuse``; the whole group fails while ``down`` is set."""

    def __init__(self, refuse: set[int] = frozenset(), hold: asyncio.Event | None = None):
        self.groups: list[list[int]] = []
        self.refuse = refuse
        self.hold = hold
        self.down = False
        self.started = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[object]:
        self.groups.append(list(items))
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.down:
            raise ConnectionError("the database is away")
        return [ValueError(f"refused {i}") if i in self.refuse else i * 2 for i in items]


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_concurrent_callers_share_a_transaction_and_each_gets_its_own_result():
    async def scenario():
        commit = Recorder()
        group = GroupCommit(commit)
        results = await asyncio.gather(*(group.submit(i) for i in range(40)))
        return commit, results

    commit, results = run(scenario())
    assert results == [i * 2 for i in range(40)]
    assert sorted(i for g in commit.groups for i in g) == list(range(40))
    assert len(commit.groups) <= 2, commit.groups  # not one transaction per caller


def test_a_lone_caller_is_committed_alone():
    async def scenario():
        commit = Recorder()
        return await GroupCommit(commit).submit(21), commit

    result, commit = run(scenario())
    assert result == 42 and commit.groups == [[21]]


def test_groups_are_at_most_max_batch():
    async def scenario():
        commit = Recorder()
        group = GroupCommit(commit, max_batch=7)
        await asyncio.gather(*(group.submit(i) for i in range(50)))
        return commit

    commit = run(scenario())
    assert all(len(g) <= 7 for g in commit.groups)
    assert sorted(i for g in commit.groups for i in g) == list(range(50))


def test_an_item_refused_on_its_own_fails_alone():
    async def scenario():
        group = GroupCommit(Recorder(refuse={3}))
        return await asyncio.gather(*(group.submit(i) for i in range(6)),
                                    return_exceptions=True)

    results = run(scenario())
    assert isinstance(results[3], ValueError) and "refused 3" in str(results[3])
    assert [r for i, r in enumerate(results) if i != 3] == [0, 2, 4, 8, 10]


def test_a_failed_transaction_fails_its_group_and_the_next_group_commits():
    async def scenario():
        commit = Recorder()
        group = GroupCommit(commit)
        commit.down = True
        failed = await asyncio.gather(*(group.submit(i) for i in range(5)),
                                      return_exceptions=True)
        commit.down = False
        return failed, await group.submit(9)

    failed, after = run(scenario())
    assert all(isinstance(r, ConnectionError) for r in failed), failed
    assert after == 18


def test_a_caller_that_gives_up_before_its_group_starts_is_left_out():
    async def scenario():
        hold = asyncio.Event()
        commit = Recorder(hold=hold)
        group = GroupCommit(commit)
        first = asyncio.create_task(group.submit(1))
        await commit.started.wait()  # the first group is committing (and held there)
        gave_up = asyncio.create_task(group.submit(2))
        kept = asyncio.create_task(group.submit(3))
        await asyncio.sleep(0)
        gave_up.cancel()
        hold.set()
        return commit, await first, await kept, gave_up

    commit, first, kept, gave_up = run(scenario())
    assert (first, kept) == (2, 6)
    assert gave_up.cancelled()
    assert commit.groups == [[1], [3]]


# ---- the store, on each engine ------------------------------------------------------------


async def _concurrent_events(settings) -> tuple[list, list, list, list, list]:
    store = Store(open_database(settings))
    try:
        made = [await store.create_subscription("key_owner", fields) for fields in (
            {"url": "http://127.0.0.1:9/a", "event_types": ["order.*"]},
            {"url": "http://127.0.0.1:9/b", "event_types": ["order.created"]},
            {"url": "http://127.0.0.1:9/c", "event_types": ["*"], "enabled": False},
            {"url": "http://127.0.0.1:9/d", "event_types": ["invoice.*"]},
        )]
        key = await store.create_key("publisher", "many")
        accepted = await asyncio.gather(*(
            store.accept_event(key["id"], "order.created", {"n": n, "text": "é"}, None, 60,
                               check_key=True)
            for n in range(60)))
        events = [event for event, created in accepted if created]
        stored = [await store.get_event(e["id"], None) for e in events]
        deliveries = []
        for event in events:
            deliveries += (await store.list_deliveries(
                None, event_id=event["id"], limit=10, order="asc")).rows
        jobs = await store.claim_due("wrk_test", 500, 60)
        return events, stored, deliveries, jobs, made
    finally:
        await store.db.dispose()


def test_concurrent_events_are_stored_with_their_deliveries_as_sqlalchemy_reads_them(settings):
    events, stored, deliveries, jobs, made = asyncio.run(_concurrent_events(settings))
    assert len(events) == 60 and len({e["id"] for e in events}) == 60
    assert all(e["deliveries"] == 3 for e in events)  # a, b and the disabled c: not d
    for event, row in zip(events, stored, strict=True):
        assert row["created_at"] == event["created_at"]
        assert row["created_at"].tzinfo is not None
    sent = {row["id"]: json.loads(row["payload"])["data"] for row in stored}
    assert sorted(d["n"] for d in sent.values()) == list(range(60))
    assert all(d["text"] == "é" for d in sent.values())
    assert len(deliveries) == 180
    by_event = {e["id"]: e for e in events}
    for delivery in deliveries:
        event = by_event[delivery["event_id"]]
        assert delivery["event_type"] == "order.created"
        assert delivery["created_at"] == delivery["updated_at"] == event["created_at"]
        assert delivery["attempts"] == 0
        if delivery["subscription_id"] == made[2]["id"]:
            assert delivery["status"] == "held" and delivery["next_attempt_at"] is None
        else:
            assert delivery["status"] == "pending"
            assert delivery["next_attempt_at"] == event["created_at"]
    # The worker's claim finds them due, with the exact body that was built at ingest.
    assert len(jobs) == 120 and {j.trigger for j in jobs} == {"scheduled"}
    for job in jobs:
        assert job.payload == encode_payload(
            "order.created", by_event[job.event_id]["created_at"], sent[job.event_id])


async def _deleted_elsewhere(settings) -> dict:
    here, elsewhere = Store(open_database(settings)), Store(open_database(settings))
    try:
        made = await elsewhere.create_key("publisher", "doomed")
        found = {"before": await here.authenticate(made["key"], cached=True)}
        await elsewhere.delete_key(made["id"])  # another process: this one is not told
        found["remembered"] = await here.authenticate(made["key"], cached=True)
        for key in (None, "idem-1"):
            try:
                await here.accept_event(made["id"], "a.b", {}, key, 60, check_key=True)
            except KeyDeleted:
                found[f"refused {key}"] = True
        found["after"] = await here.authenticate(made["key"], cached=True)
        found["uncached"] = await here.authenticate(made["key"])
        found["events"] = (await here.list_events(
            made["id"], None, None, None, None, 10, "asc")).rows
        return found
    finally:
        await here.db.dispose()
        await elsewhere.db.dispose()


def test_a_remembered_key_deleted_elsewhere_stores_nothing_and_is_forgotten(settings):
    found = asyncio.run(_deleted_elsewhere(settings))
    assert found["before"]["role"] == "publisher"
    assert found["remembered"] == found["before"]  # memory alone does not know...
    assert found["refused None"] and found["refused idem-1"]  # ...the transaction does
    assert found["after"] is None and found["uncached"] is None
    assert found["events"] == []


# ---- over HTTP: two API processes on one database -----------------------------------------


@pytest.fixture
def two_servers(settings):
    """Two API servers on one database, as two ``dispatcher api`` processes would be."""
    with AppServer(settings, workers=False) as one, AppServer(settings, workers=False) as two:
        yield one, two


def _client(server: AppServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30,
                        headers={"authorization": f"Bearer {key}"})


def test_a_key_deleted_through_another_server_is_refused_at_once(two_servers, database_url):
    here, there = two_servers
    with _client(there, ADMIN_TOKEN) as admin:
        key = admin.post("/v1/api-keys", json={"role": "publisher", "name": "p"}).json()
        with _client(here, key["key"]) as publisher:
            assert publisher.post("/v1/events", json={"type": "a.b"}).status_code == 202
            assert admin.delete(f"/v1/api-keys/{key['id']}").status_code == 204
            refused = publisher.post("/v1/events", json={"type": "a.b"})
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "unauthorized"
            again = publisher.post("/v1/events", json={"type": "a.b"},
                                   headers={"idempotency-key": "k1"})
            assert again.status_code == 401, again.text
    assert scalar(database_url, "SELECT count(*) FROM event WHERE publisher = :p",
                  p=key["id"]) == 1


def test_a_subscription_made_through_another_server_gets_the_next_event(two_servers):
    here, there = two_servers
    with _client(here, ADMIN_TOKEN) as one, _client(there, ADMIN_TOKEN) as two:
        assert one.post("/v1/events", json={"type": "a.b"}).json()["deliveries"] == 0
        made = two.post("/v1/subscriptions", json={"url": "http://127.0.0.1:9/x"})
        assert made.status_code == 201, made.text
        event = one.post("/v1/events", json={"type": "a.b"}).json()
        assert event["deliveries"] == 1
        listed = one.get(f"/v1/events/{event['id']}/deliveries").json()["data"]
        assert [d["subscription_id"] for d in listed] == [made.json()["id"]]
        assert two.delete(f"/v1/subscriptions/{made.json()['id']}").status_code == 204
        assert one.post("/v1/events", json={"type": "a.b"}).json()["deliveries"] == 0


def test_start_up_objects_are_kept_out_of_the_collector_while_serving(settings):
    import gc

    with AppServer(settings, workers=False) as server:
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0  # given back at shutdown


def test_concurrent_posts_are_all_answered_202_and_all_committed(app_server, database_url):
    with _client(app_server, ADMIN_TOKEN) as admin:
        for i in range(3):
            admin.post("/v1/subscriptions",
                       json={"url": f"http://127.0.0.1:9/{i}"}).raise_for_status()
        key = admin.post("/v1/api-keys", json={"role": "publisher", "name": "p"}).json()

    def post(n: int) -> httpx.Response:
        with _client(app_server, key["key"]) as client:
            return client.post("/v1/events", json={"type": "load.test", "data": {"n": n}})

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(post, range(200)))
    assert {a.status_code for a in answers} == {202}, {a.text for a in answers}
    bodies = [a.json() for a in answers]
    assert len({b["id"] for b in bodies}) == 200
    assert {b["deliveries"] for b in bodies} == {3}
    for body in bodies:
        created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
        assert created.tzinfo == UTC
    assert scalar(database_url, "SELECT count(*) FROM event WHERE publisher = :p",
                  p=key["id"]) == 200
    assert scalar(database_url, "SELECT count(*) FROM delivery d JOIN event e "
                  "ON e.id = d.event_id WHERE e.publisher = :p", p=key["id"]) == 600
