"""``dispatcher serve`` with worker processes (DISPATCHER_WORKER_PROCESSES): they deliver,
stop with serve, are restarted when killed, do not outlive serve; events wake a worker in
another process at once on SQLite too; /metrics adds them all up."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter

import httpx
import pytest

from dispatcher.supervisor import remove_left_behind

from .conftest import ADMIN_TOKEN
from .databases import scalar
from .harness import (
    ApiProcess,
    Receiver,
    Reply,
    ServeProcess,
    WorkerProcess,
    alive,
    child_pids,
    command_line,
    environment_of,
    poll,
)

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
STARTED = re.compile(r"worker (wrk_\w+) started pid=(\d+)")
ATTEMPT_PID = re.compile(r"attempt_id=\S+ .*pid=(\d+)")
# Few attempts per process at once, so that every process takes part in a small workload.
SPREAD = {"DISPATCHER_WORKER_CONCURRENCY": "4", "DISPATCHER_MAX_IN_FLIGHT_PER_SUBSCRIPTION": "4",
          "DISPATCHER_CLAIM_BATCH_SIZE": "1", "DISPATCHER_POLL_INTERVAL_SECONDS": "0.2",
          "DISPATCHER_RETRY_SCHEDULE": "0.2,0.5", "DISPATCHER_RETRY_JITTER": "0"}

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("heavy")]  # see conftest.py


def started_workers(server: ServeProcess) -> dict[str, int]:
    """The worker processes' owners, and their pids, as their start lines say."""
    return {owner: int(pid) for owner, pid in STARTED.findall(server.log())}


def start_with_workers(database_url: str, log, count: int, **env: str) -> ServeProcess:
    server = ServeProcess(database_url, log, DISPATCHER_WORKER_PROCESSES=str(count),
                          **env).start()
    poll(lambda: len(started_workers(server)) == count, 30, 0.1,
         message=f"{count} worker processes started")
    return server


def publish(base: str, count: int) -> set[str]:
    with httpx.Client(base_url=base, headers=ADMIN, timeout=30) as client:
        return {client.post("/v1/events", json={"type": "a.b", "data": {"n": n}}).json()["id"]
                for n in range(count)}


def subscribe(base: str, url: str) -> None:
    answer = httpx.post(base + "/v1/subscriptions", headers=ADMIN, json={"url": url})
    assert answer.status_code == 201, answer.text


def attempts_2xx(base: str) -> float:
    text = httpx.get(base + "/metrics", timeout=30).text
    found = re.search(r'^dispatcher_attempts_total\{status_class="2xx"\} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


def test_serve_runs_worker_processes_that_deliver_and_stop_with_it(tmp_path, database_url):
    server = start_with_workers(database_url, tmp_path / "serve.log", 2, **SPREAD)
    try:
        children = child_pids(server.process.pid)
        assert len(children) == 2
        assert sorted(children) == sorted(started_workers(server).values())
        for pid in children:
            argv = command_line(pid)
            assert argv[1:4] == ["-m", "dispatcher", "worker"], argv
        # serve made its own metrics directory and handed it to them.
        folder = environment_of(children[0])["PROMETHEUS_MULTIPROC_DIR"]
        assert os.path.isdir(folder) and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
        with Receiver(lambda n, r: Reply(200, delay=0.2)) as receiver:
            subscribe(server.url, receiver.url)
            accepted = publish(server.url, 60)
            poll(lambda: set(receiver.ids()) == accepted, 30, 0.1,
                 message="every event delivered")
            # Every attempt is counted once at serve's /metrics, whichever process made it.
            poll(lambda: attempts_2xx(server.url) == 60, 10, 0.1,
                 message="60 attempts in serve's /metrics")
        by_pid = Counter(int(pid) for pid in ATTEMPT_PID.findall(server.log()))
        assert sum(by_pid.values()) == 60
        assert set(by_pid) - {server.process.pid}, "no worker process made an attempt"
        began = time.monotonic()
        assert server.stop() == 0, server.log()
        assert time.monotonic() - began < 20
    finally:
        if server.process.poll() is None:
            server.kill()
    assert not any(alive(pid) for pid in children)
    assert not os.path.exists(folder)  # removed once its processes ended
    assert "killing it" not in server.log() and "Traceback" not in server.log()


def test_a_killed_worker_process_is_restarted_and_nothing_is_lost(tmp_path, database_url):
    env = {**SPREAD, "DISPATCHER_DELIVERY_TIMEOUT_SECONDS": "2"}  # leases of 14 s
    server = start_with_workers(database_url, tmp_path / "serve.log", 2, **env)
    try:
        with Receiver(lambda n, r: Reply(200, delay=0.5)) as receiver:
            subscribe(server.url, receiver.url)
            accepted = publish(server.url, 60)
            workers = started_workers(server)

            def leasing_child() -> str | None:
                owners = [owner for owner in workers if scalar(
                    database_url, "SELECT count(*) FROM delivery WHERE lease_owner = :o "
                    "AND status = 'pending'", o=owner)]
                return owners[0] if owners else None

            victim = poll(leasing_child, 20, 0.05, message="a worker process holding leases")
            os.kill(workers[victim], signal.SIGKILL)
            poll(lambda: len(started_workers(server)) == 3, 20, 0.1,
                 message="a worker process started again")
            assert "(killed by SIGKILL); starting another in" in server.log()
            # Its leases ran out; other workers sent those deliveries (at least once).
            poll(lambda: scalar(database_url, "SELECT count(*) FROM delivery "
                                "WHERE status = 'succeeded'") == 60, 45, 0.2,
                 message="every delivery succeeded")
            assert set(receiver.ids()) == accepted
        assert len(child_pids(server.process.pid)) == 2
        assert server.stop() == 0, server.log()
    finally:
        if server.process.poll() is None:
            server.kill()


def test_worker_processes_do_not_outlive_a_killed_serve(tmp_path, database_url):
    # A temp directory of its own: a serve another test starts meanwhile would remove the
    # dead serve's metrics directory from the shared one before this test looks.
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    server = start_with_workers(database_url, tmp_path / "serve.log", 2, TMPDIR=str(own_tmp))
    children = child_pids(server.process.pid)
    assert len(children) == 2
    folder = environment_of(children[0])["PROMETHEUS_MULTIPROC_DIR"]
    server.kill()
    # Whichever came first: SIGTERM (PR_SET_PDEATHSIG) or the end of serve's pipe.
    poll(lambda: not any(alive(pid) for pid in children), 10, 0.1,
         message="the worker processes gone")
    # Its metrics directory was left behind; the next serve to start removes it.
    assert os.path.dirname(folder) == str(own_tmp)
    assert os.path.isdir(folder)
    remove_left_behind(os.path.dirname(folder))
    assert not os.path.exists(folder)


def test_no_worker_processes_is_one_process(tmp_path, database_url):
    server = ServeProcess(database_url, tmp_path / "serve.log",
                          DISPATCHER_WORKER_PROCESSES="0").start()
    try:
        with Receiver() as receiver:
            subscribe(server.url, receiver.url)
            accepted = publish(server.url, 3)
            poll(lambda: set(receiver.ids()) == accepted, 15, 0.1, message="delivered")
        assert child_pids(server.process.pid) == []
    finally:
        assert server.stop() == 0, server.log()
    assert "pid=" not in server.log() and "worker processes" not in server.log()


def test_an_event_wakes_a_worker_in_another_process_at_once(tmp_path, database_url):
    """``dispatcher api`` and ``dispatcher worker`` on one database, polling only every 30 s:
    each event reaches the receiver well within a second (on SQLite: the wake sockets)."""
    env = {"DISPATCHER_POLL_INTERVAL_SECONDS": "30"}
    api = ApiProcess(database_url, tmp_path / "api.log", **env).start()
    worker = WorkerProcess(database_url, tmp_path / "worker.log", **env).start()
    try:
        with Receiver() as receiver:
            subscribe(api.url, receiver.url)
            time.sleep(0.5)  # the worker's first look found nothing: it waits now
            with httpx.Client(base_url=api.url, headers=ADMIN, timeout=30) as client:
                for n in range(5):
                    sent = time.monotonic()
                    client.post("/v1/events", json={"type": "a.b", "data": {}})
                    poll(lambda n=n: receiver.count() == n + 1, 5, 0.005,
                         message=f"event {n + 1} delivered")
                    assert receiver.requests[n].at - sent < 0.5
                    time.sleep(0.3)  # the worker idle again
    finally:
        for process in (worker, api):
            assert process.stop() == 0, process.log()
