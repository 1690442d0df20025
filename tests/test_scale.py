"""Scale-out on PostgreSQL: one API process and three worker processes on one database."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from .databases import rows, scalar
from .harness import ApiProcess, Receiver, Reply, WorkerProcess, most_in_flight, poll

ADMIN = {"authorization": "Bearer test-admin-token-0123456789"}
SUBSCRIPTIONS = 30
EVENTS = 100  # x 30 subscriptions = 3,000 deliveries

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("heavy"),  # conftest.py: at most one heavy test at a time
    pytest.mark.parametrize("engine", ["postgresql"], indirect=True),
]

# Workers poll rarely: a new event must reach them through NOTIFY, not the poll.
WORKER_ENV = {
    "DISPATCHER_WORKER_CONCURRENCY": "32",
    "DISPATCHER_DELIVERY_TIMEOUT_SECONDS": "2",
    "DISPATCHER_RETRY_SCHEDULE": "0.2,0.5,1,1,1",
    "DISPATCHER_POLL_INTERVAL_SECONDS": "30",
    "DISPATCHER_DB_POOL_SIZE": "4",
    "DISPATCHER_DB_MAX_OVERFLOW": "4",
}


@contextlib.contextmanager
def cluster(database_url: str, tmp_path, workers: int = 3) -> Iterator[tuple]:
    api = ApiProcess(database_url, tmp_path / "api.log", DISPATCHER_DB_POOL_SIZE="4").start()
    started = [WorkerProcess(database_url, tmp_path / f"worker{i}.log", **WORKER_ENV).start()
               for i in range(workers)]
    try:
        yield api, started
    finally:
        for process in [api, *started]:
            if process.process.poll() is None:
                assert process.stop() == 0, process.log()


def subscribe_all(api, receiver) -> list[str]:
    return [
        httpx.post(api.url + "/v1/subscriptions", headers=ADMIN,
                   json={"url": f"{receiver.url}/{i}"}).json()["id"]
        for i in range(SUBSCRIPTIONS)
    ]


def publish(api, client: httpx.Client, n: int) -> str:
    answer = client.post("/v1/events", json={"type": "order.created", "data": {"n": n}})
    assert answer.status_code == 202, answer.text
    assert answer.json()["deliveries"] == SUBSCRIPTIONS
    return answer.json()["id"]


def succeeded(url: str) -> int:
    return scalar(url, "SELECT count(*) FROM delivery WHERE status = 'succeeded'")


def assert_each_delivered_once_in_the_records(url: str, receiver, event_ids) -> None:
    doubles = rows(url, "SELECT delivery_id FROM attempt WHERE outcome = 'succeeded' "
                        "GROUP BY delivery_id HAVING count(*) > 1")
    assert doubles == []
    assert scalar(url, "SELECT count(DISTINCT delivery_id) FROM attempt "
                       "WHERE outcome = 'succeeded'") == len(event_ids) * SUBSCRIPTIONS
    seen = {(r.path, r.headers["webhook-id"]) for r in receiver.requests}
    expected = {(f"/hook/{i}", e) for i in range(SUBSCRIPTIONS) for e in event_ids}
    assert seen == expected


def test_one_api_three_workers_deliver_3000_exactly_once(database_url, tmp_path):
    with Receiver() as receiver, cluster(database_url, tmp_path) as (api, workers):
        subscribe_all(api, receiver)
        with httpx.Client(base_url=api.url, headers=ADMIN, timeout=30) as client:
            events = [publish(api, client, n) for n in range(EVENTS)]
        poll(lambda: succeeded(database_url) == EVENTS * SUBSCRIPTIONS, 120, 0.5,
             message="3,000 deliveries succeeded")
        assert scalar(database_url, "SELECT count(*) FROM delivery") == EVENTS * SUBSCRIPTIONS
        assert_each_delivered_once_in_the_records(database_url, receiver, events)
        # No worker died along the way.
        for worker in workers:
            assert worker.process.poll() is None


def test_sigkill_of_one_worker_loses_nothing(database_url, tmp_path):
    # Answers slow enough (96 in flight / 0.2 s) that 3,000 take seconds: the kill finds
    # the worker holding leases (at 20 ms, with the receiver's 40 ms ACK delay gone, the
    # deliveries kept pace with the publishing and could all be done by then).
    with Receiver(lambda n, r: Reply(200, delay=0.2)) as receiver, \
            cluster(database_url, tmp_path) as (api, workers):
        subscribe_all(api, receiver)
        with httpx.Client(base_url=api.url, headers=ADMIN, timeout=30) as client:
            events = [publish(api, client, n) for n in range(EVENTS)]
        poll(lambda: receiver.count() >= 600, 60, message="deliveries under way")
        workers[0].kill()
        dead = re.search(r"worker (wrk_\w+) started", workers[0].log())[1]
        # It died holding leases: those deliveries wait for the leases to run out.
        assert scalar(database_url, "SELECT count(*) FROM delivery WHERE lease_owner = :o",
                      o=dead) > 0
        # Leases of the dead worker run out 2 x 2 s + 10 s after they were last extended.
        poll(lambda: succeeded(database_url) == EVENTS * SUBSCRIPTIONS, 120, 0.5,
             message="every delivery succeeded after the kill")
        assert_each_delivered_once_in_the_records(database_url, receiver, events)


def _terminate_backends(url: str) -> int:
    return scalar(url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def test_notify_wakes_workers_elsewhere_and_survives_terminated_backends(database_url,
                                                                          tmp_path):
    with Receiver() as receiver, cluster(database_url, tmp_path, workers=2) as (api, _):
        subscribe_all(api, receiver)
        with httpx.Client(base_url=api.url, headers=ADMIN, timeout=30) as client:
            # Workers poll every 30 s: an arrival within 2 s is NOTIFY's doing.
            start = time.monotonic()
            first = publish(api, client, 0)
            poll(lambda: receiver.count() == SUBSCRIPTIONS, 5, 0.01, message="woken by NOTIFY")
            assert time.monotonic() - start < 2

            events = [first]
            for round_ in range(3):
                assert _terminate_backends(database_url) > 0
                # The API's pool and the workers' pools and LISTEN connections recover.
                events += [publish(api, client, 1 + round_ * 20 + n) for n in range(20)]
            events.append(publish(api, client, 999))
            poll(lambda: succeeded(database_url) == len(events) * SUBSCRIPTIONS, 60, 0.2,
                 message="every accepted event delivered after the backends were terminated")
        assert_each_delivered_once_in_the_records(database_url, receiver, events)
        ready = httpx.get(api.url + "/readyz")
        assert ready.status_code == 200


def test_an_ordered_subscription_across_three_workers_and_a_sigkill(database_url, tmp_path):
    """1,000 events to one ordered subscription whose receiver fails now and then; the
    worker holding the head (number 300, which the receiver keeps until then; the
    subscription's deadline is 5 s) is killed with SIGKILL. First arrivals come in event
    order, dispatcher-sequence has no gap, and two requests to the subscription are never
    in flight at once."""
    tried: set[int] = set()
    lock, held = threading.Lock(), threading.Event()

    def answer(n, request) -> Reply:
        sequence = int(request.headers["dispatcher-sequence"])
        with lock:
            first = sequence not in tried
            tried.add(sequence)
        if sequence == 300 and first:
            held.wait(120)  # until its worker has been killed
        return Reply(500 if first and sequence % 50 == 7 else 200, delay=0.005)

    with Receiver(answer) as receiver, cluster(database_url, tmp_path) as (api, workers):
        made = httpx.post(api.url + "/v1/subscriptions", headers=ADMIN,
                          json={"url": receiver.url, "ordered": True, "timeout_seconds": 5})
        assert made.status_code == 201, made.text
        start = time.monotonic()

        def publish_all() -> None:
            with httpx.Client(base_url=api.url, headers=ADMIN, timeout=30) as client:
                for n in range(1000):
                    sent = client.post("/v1/events", json={"type": "order.placed",
                                                            "data": {"n": n}})
                    assert sent.status_code == 202, sent.text

        # Published meanwhile: number 300 may come up before the last event is accepted.
        publisher = threading.Thread(target=publish_all)
        publisher.start()
        holder = poll(lambda: scalar(
            database_url, "SELECT lease_owner FROM delivery WHERE sequence = 300 "
            "AND lease_owner IS NOT NULL"), 120, 0.01, message="number 300 in flight")
        [killed] = [w for w in workers if f"worker {holder} started" in w.log()]
        killed.kill()
        held.set()
        publisher.join(120)
        poll(lambda: scalar(database_url, "SELECT count(*) FROM delivery "
                            "WHERE status = 'succeeded'") == 1000, 120, 0.5,
             message="every delivery succeeded after the kill")
        seconds = time.monotonic() - start
    firsts: list[int] = []
    for request in receiver.requests:
        sequence = int(request.headers["dispatcher-sequence"])
        if sequence not in firsts:
            firsts.append(sequence)
    assert firsts == list(range(1, 1001))
    assert most_in_flight(receiver.requests) == 1
    # Number 300 went twice (the killed worker's attempt, then after its lease ran out).
    assert [int(r.headers["dispatcher-sequence"]) for r in receiver.requests].count(300) == 2
    print(f"ordered: 1,000 deliveries in {seconds:.1f} s with a SIGKILL and its lease")

