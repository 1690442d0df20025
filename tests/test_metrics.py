"""``/metrics``: exact counts for a known workload, several processes adding up through
PROMETHEUS_MULTIPROC_DIR, the worker's own port, the metrics token, a database that does
not answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dispatcher import __version__
from dispatcher.api import create_app
from dispatcher.config import Settings

from .conftest import ADMIN_TOKEN
from .harness import (
    ApiProcess,
    AppServer,
    Receiver,
    Reply,
    ServeProcess,
    WorkerProcess,
    free_port,
    poll,
)

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
METRICS_TOKEN = "metrics-token-0123456789"
FAST = {"DISPATCHER_RETRY_SCHEDULE": "0.2,0.4", "DISPATCHER_RETRY_JITTER": "0",
        "DISPATCHER_POLL_INTERVAL_SECONDS": "0.2"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str, token: str | None = None) -> Samples:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(url + "/metrics", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def attempts(samples: Samples, status_class: str) -> float | None:
    return value(samples, "dispatcher_attempts_total", status_class=status_class)


def outcome(samples: Samples, name: str) -> float | None:
    return value(samples, "dispatcher_delivery_outcomes_total", outcome=name)


def subscribe(base: str, url: str, **fields: object) -> dict:
    answer = httpx.post(base + "/v1/subscriptions", headers=ADMIN, json={"url": url, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def publish(base: str, event_type: str, **headers: str) -> httpx.Response:
    answer = httpx.post(base + "/v1/events", headers={**ADMIN, **headers},
                        json={"type": event_type, "data": {}})
    assert answer.status_code in (200, 202), answer.text
    return answer


@pytest.mark.slow
def test_metrics_count_a_known_workload_exactly(tmp_path, database_url):
    """Its own process, so every counter starts at zero and the values are absolute."""
    server = ServeProcess(database_url, tmp_path / "serve.log", **FAST).start()
    try:
        with Receiver() as ok, Receiver(lambda n, r: Reply(500)) as broken, \
                Receiver(lambda n, r: Reply(404)) as missing:
            base = server.url
            before = scrape(base)
            assert attempts(before, "2xx") == 0 and attempts(before, "error") == 0
            assert value(before, "dispatcher_events_accepted_total") == 0
            subscribe(base, ok.url, event_types=["ok.*"])
            subscribe(base, broken.url, event_types=["broken.*"])
            gone = subscribe(base, missing.url, event_types=["missing.*"])
            subscribe(base, ok.url, event_types=["held.*"], enabled=False)
            for _ in range(4):
                assert publish(base, "ok.x").status_code == 202
            # An idempotent repeat is answered 200 and counted once.
            assert publish(base, "ok.x", **{"idempotency-key": "k1"}).status_code == 202
            assert publish(base, "ok.x", **{"idempotency-key": "k1"}).status_code == 200
            publish(base, "broken.x")  # 500, 500, 500: two retries, then failed
            publish(base, "missing.x")  # 404: failed at once
            publish(base, "held.x")  # to a disabled subscription: held
            publish(base, "nobody.listens")  # accepted, no delivery

            def done() -> Samples | None:
                now = scrape(base)
                return now if attempts(now, "4xx") == 1 and attempts(now, "5xx") == 3 \
                    and attempts(now, "2xx") == 5 else None

            poll(done, 15, 0.1, message="9 attempts counted")
            # A manual attempt on the failed delivery fails again: it stays failed.
            failed = httpx.get(base + "/v1/deliveries", headers=ADMIN,
                               params={"subscription_id": gone["id"]}).json()["data"][0]
            assert failed["status"] == "failed"
            answer = httpx.post(base + f"/v1/deliveries/{failed['id']}/retry", headers=ADMIN)
            assert answer.status_code == 202, answer.text
            after = poll(lambda: (s := scrape(base)) and attempts(s, "4xx") == 2 and s,
                         15, 0.1, message="the manual attempt counted")
    finally:
        assert server.stop() == 0, server.log()

    assert {c: attempts(after, c) for c in ("2xx", "3xx", "4xx", "5xx", "other", "error")} \
        == {"2xx": 5, "3xx": 0, "4xx": 2, "5xx": 3, "other": 0, "error": 0}
    assert {o: outcome(after, o) for o in ("succeeded", "retrying", "failed", "unchanged")} \
        == {"succeeded": 5, "retrying": 2, "failed": 2, "unchanged": 1}
    assert value(after, "dispatcher_attempt_duration_seconds_count") == 10
    assert value(after, "dispatcher_attempt_duration_seconds_bucket", le="+Inf") == 10
    assert value(after, "dispatcher_events_accepted_total") == 9
    assert value(after, "dispatcher_fanout_deliveries_total") == 8
    assert value(after, "dispatcher_database_up") == 1
    assert value(after, "dispatcher_deliveries_pending") == 0
    assert value(after, "dispatcher_deliveries_held") == 1
    assert value(after, "dispatcher_deliveries_failed") == 2
    assert value(after, "dispatcher_oldest_due_delivery_age_seconds") == 0
    assert value(after, "dispatcher_subscriptions_disabled") == 1
    assert value(after, "dispatcher_subscriptions_failing") == 2  # the 500 and the 404
    claims = value(after, "dispatcher_claim_batch_size_count")
    assert claims is not None and claims > 0
    # Every attempt was claimed once (the manual one too).
    assert value(after, "dispatcher_claim_batch_size_sum") == 10
    # The process's own metrics are there too.
    assert value(after, "process_resident_memory_bytes")


@pytest.mark.slow
def test_oldest_due_delivery_age_grows_while_nothing_sends(tmp_path, database_url):
    """``dispatcher api`` alone: what is published waits, and the gauges show it."""
    api = ApiProcess(database_url, tmp_path / "api.log").start()
    try:
        subscribe(api.url, "http://127.0.0.1:9/never")
        publish(api.url, "a.b")
        publish(api.url, "a.b")
        waiting = poll(lambda: (s := scrape(api.url)) and value(
            s, "dispatcher_oldest_due_delivery_age_seconds") >= 0.3 and s, 10, 0.1,
            message="the oldest due delivery's age")
        assert value(waiting, "dispatcher_deliveries_pending") == 2
        # The api process runs no worker: it made no attempt and no claim.
        assert value(waiting, "dispatcher_claim_batch_size_count") == 0
        assert value(waiting, "dispatcher_attempt_duration_seconds_count") == 0
    finally:
        assert api.stop() == 0, api.log()


@pytest.mark.slow
def test_processes_add_up_through_the_multiprocess_directory(tmp_path, database_url):
    """An api and a worker sharing PROMETHEUS_MULTIPROC_DIR: the api's /metrics shows the
    attempts the worker made; the worker's own port shows its own, behind the token."""
    folder = tmp_path / "prometheus"
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "DISPATCHER_METRICS_TOKEN": METRICS_TOKEN,
              **FAST}
    worker_port = free_port()
    api = ApiProcess(database_url, tmp_path / "api.log", **shared).start()
    worker = WorkerProcess(database_url, tmp_path / "worker.log",
                           DISPATCHER_METRICS_PORT=str(worker_port), **shared).start()
    worker_url = f"http://127.0.0.1:{worker_port}"
    try:
        with Receiver() as ok, Receiver(lambda n, r: Reply(503)) as broken:
            subscribe(api.url, ok.url, event_types=["ok.*"])
            subscribe(api.url, broken.url, event_types=["broken.*"])
            for _ in range(3):
                publish(api.url, "ok.x")
            publish(api.url, "broken.x")
            counted = poll(lambda: (s := scrape(api.url, METRICS_TOKEN))
                           and attempts(s, "5xx") == 3 and attempts(s, "2xx") == 3 and s,
                           20, 0.1, message="the worker's attempts in the api's /metrics")
            assert value(counted, "dispatcher_events_accepted_total") == 4
            assert outcome(counted, "succeeded") == 3 and outcome(counted, "failed") == 1
            assert outcome(counted, "retrying") == 2
            assert value(counted, "dispatcher_attempt_duration_seconds_count") == 6
            assert value(counted, "dispatcher_deliveries_failed") == 1
            # The worker's port: that process alone (it accepted no event), token required.
            assert httpx.get(worker_url + "/metrics").status_code == 401
            own = scrape(worker_url, METRICS_TOKEN)
            assert attempts(own, "2xx") == 3 and attempts(own, "5xx") == 3
            assert value(own, "dispatcher_events_accepted_total") == 0
            assert value(own, "process_resident_memory_bytes")
            assert httpx.get(worker_url + "/other").status_code == 404
        assert sorted(p.name.split("_")[0] for p in folder.iterdir()) == [
            "counter", "counter", "histogram", "histogram"]
        assert worker.stop() == 0, worker.log()
        # Counters of a process that stopped still count.
        later = scrape(api.url, METRICS_TOKEN)
        assert attempts(later, "2xx") == 3 and attempts(later, "5xx") == 3
    finally:
        for process in (worker, api):
            if process.process.poll() is None:
                assert process.stop() == 0, process.log()


def test_multiprocess_mode_holds_whatever_imported_prometheus_client_first(tmp_path):
    """prometheus_client picks its value class at import: imported before the variable was
    set (by a wrapper, a test), dispatcher's metrics must still go to the directory."""
    folder = tmp_path / "prometheus"
    program = f"""
import json, os
import prometheus_client
os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(folder)!r}
from dispatcher import metrics
metrics.count_event(3)
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
registry = CollectorRegistry()
MultiProcessCollector(registry)
print(json.dumps([registry.get_sample_value("dispatcher_events_accepted_total"),
                  registry.get_sample_value("dispatcher_fanout_deliveries_total")]))
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [1.0, 3.0]


def test_metrics_token(serve):
    with serve(metrics_token=METRICS_TOKEN) as admin:
        for headers in ({}, {"authorization": "Bearer wrong-token-0123456789"},
                        {"authorization": f"Basic {METRICS_TOKEN}"}, ADMIN):
            answer = httpx.get(str(admin.base_url) + "/metrics", headers=headers)
            assert answer.status_code == 401
            assert answer.json()["error"]["code"] == "unauthorized"
        samples = scrape(str(admin.base_url), METRICS_TOKEN)
        assert value(samples, "dispatcher_database_up") == 1
        # Health stays open.
        assert httpx.get(str(admin.base_url) + "/healthz").status_code == 200


@pytest.mark.parametrize("url", [
    "postgresql+asyncpg://postgres@127.0.0.1:{port}/nothing",
    "sqlite+aiosqlite:///{tmp}/no/such/folder/dispatcher.db",
], ids=["postgresql", "sqlite"])
def test_a_database_that_does_not_answer_is_reported_not_a_500(tmp_path, url):
    settings = Settings(database_url=url.format(port=free_port(), tmp=tmp_path),
                        admin_token=ADMIN_TOKEN, db_connect_timeout_seconds=1)
    with AppServer(settings, workers=False) as server:
        samples = scrape(server.url)
    assert value(samples, "dispatcher_database_up") == 0
    assert value(samples, "dispatcher_deliveries_pending") is None
    # What the process counted is still there.
    assert value(samples, "dispatcher_events_accepted_total") is not None
    assert value(samples, "dispatcher_build_info", version=__version__) == 1


def test_metrics_is_in_the_openapi_as_text():
    schema = create_app(Settings(database_url="sqlite+aiosqlite://"), workers=False).openapi()
    operation = schema["paths"]["/metrics"]["get"]
    assert operation["tags"] == ["operations"]
    assert list(operation["responses"]["200"]["content"]) == [
        "text/plain; version=0.0.4; charset=utf-8"]
    assert "401" in operation["responses"]


def test_a_scrape_reads_the_counters_before_the_queue():
    """Attempts are counted after their commit; /metrics takes the counters first, so its
    queue gauges (read after) include every attempt the counters show."""
    from dispatcher import metrics
    from dispatcher.store import QueueStats

    before = metrics.counted_now()
    metrics.EVENTS_ACCEPTED.inc()  # what a commit that lands between the two reads counts
    stats = QueueStats(pending=0, held=0, failed=0, oldest_due_seconds=0.0,
                       disabled_subscriptions=0, failing_subscriptions=0)
    then, now = (parse(metrics.render(c, stats).decode())
                 for c in (before, metrics.counted_now()))
    assert value(now, "dispatcher_events_accepted_total") == value(
        then, "dispatcher_events_accepted_total") + 1
