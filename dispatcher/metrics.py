"""Prometheus metrics: what the API and the workers count, and what ``/metrics`` shows.

With ``PROMETHEUS_MULTIPROC_DIR`` set (to one directory, for every dispatcher process on a
machine), counters and histograms are written to files there and ``/metrics`` of any API
process adds up every process's values (``MultiProcessCollector``); without it, each
process shows its own. The queue's state (pending, held, failed deliveries, ...) is read
from the database at scrape time, so it is the same whichever process is asked.
"""

from __future__ import annotations

import hmac
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import values

from . import __version__
from .error_body import error_bytes
from .vocabulary import AttemptOutcome, DeliveryStatus

if TYPE_CHECKING:
    from .store import AttemptRecord, QueueStats

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

if MULTIPROC_DIR is not None:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)
    if not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client picks its value class when it is first imported; imported before
        # the variable was set, it would keep these metrics in this process alone.
        values.ValueClass = values.get_value_class()

from prometheus_client import (  # noqa: E402 - after the choice
    REGISTRY,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest  # noqa: E402
from prometheus_client.metrics_core import GaugeMetricFamily, Metric  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

# No ``_created`` series: multiprocess mode has none, so both modes show the same series.
disable_created_metrics()

# The text format every Prometheus version reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Webhook receivers answer in milliseconds to seconds; the deadline is 15 s by default.
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
# A claim leases 1 to CLAIM_BATCH_SIZE (at most 5,000) deliveries.
CLAIM_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 200, 500, 1000, 2000, 5000)

# A delivery after an attempt: done, retried later, failed for good, or left as it was.
OUTCOMES = (AttemptOutcome.SUCCEEDED, "retrying", AttemptOutcome.FAILED, "unchanged")

EVENTS_ACCEPTED = Counter(
    "dispatcher_events_accepted",
    "Events accepted by POST /v1/events (an idempotent repeat answered 200 is not counted)")
FANOUT_DELIVERIES = Counter(
    "dispatcher_fanout_deliveries",
    "Deliveries created by the fan-out of accepted events")
ATTEMPTS = Counter(
    "dispatcher_attempts",
    "Delivery attempts recorded, by the class of the receiver's status code "
    "(error: no answer: timeout, connection error, blocked address)",
    ["status_class"])
DELIVERY_OUTCOMES = Counter(
    "dispatcher_delivery_outcomes",
    "What each recorded attempt did to its delivery: succeeded; retrying (another attempt "
    "is scheduled); failed (for good: retries exhausted or a final answer); unchanged (a "
    "failed manual attempt left a finished or held delivery as it was)",
    ["outcome"])
ATTEMPT_SECONDS = Histogram(
    "dispatcher_attempt_duration_seconds",
    "How long each recorded attempt took, connect to last byte read",
    buckets=ATTEMPT_BUCKETS)
CLAIM_SIZE = Histogram(
    "dispatcher_claim_batch_size",
    "Deliveries leased by each claim that found any",
    buckets=CLAIM_BUCKETS)

# Bound once: the per-attempt path is a dict lookup and an increment, no label handling.
_BY_HUNDRED = {n: ATTEMPTS.labels(f"{n}xx") for n in (2, 3, 4, 5)}
_OTHER_CODE = ATTEMPTS.labels("other")
_NO_ANSWER = ATTEMPTS.labels("error")
_SUCCEEDED, _RETRYING, _FAILED, _UNCHANGED = (DELIVERY_OUTCOMES.labels(o) for o in OUTCOMES)


def count_event(deliveries: int) -> None:
    """An event was accepted (stored), fanning out to ``deliveries`` subscriptions."""
    EVENTS_ACCEPTED.inc()
    if deliveries:
        FANOUT_DELIVERIES.inc(deliveries)


def count_claim(size: int) -> None:
    CLAIM_SIZE.observe(size)


def count_attempts(batch: Sequence[AttemptRecord]) -> None:
    """Attempts that are committed: their status classes, durations and what they did."""
    observe = ATTEMPT_SECONDS.observe
    for record in batch:
        code = record.status_code
        if code is None:
            _NO_ANSWER.inc()
        else:
            _BY_HUNDRED.get(code // 100, _OTHER_CODE).inc()
        if record.outcome == AttemptOutcome.SUCCEEDED:
            _SUCCEEDED.inc()
        elif record.job.resume_status is not None:
            _UNCHANGED.inc()
        elif record.status == DeliveryStatus.PENDING:
            _RETRYING.inc()
        else:
            _FAILED.inc()
        observe(record.duration_ms / 1000)


# ---- exposition -----------------------------------------------------------------------------

class QueueCollector(Collector):
    """The queue's state as ``Store.queue_stats`` read it for this scrape; ``None``: the
    database did not answer (``dispatcher_database_up 0``, and no queue gauges)."""

    def __init__(self, stats: QueueStats | None) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("dispatcher_build_info", "The running version, always 1",
                                 labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily(
            "dispatcher_database_up",
            "1 when the database answered this scrape's queries, else 0",
            value=0 if self.stats is None else 1)
        if self.stats is None:
            return
        stats = self.stats
        for name, value, text in (
            ("dispatcher_deliveries_pending", stats.pending,
             "Deliveries waiting for their next attempt or in flight"),
            ("dispatcher_deliveries_held", stats.held,
             "Deliveries held because their subscription is disabled"),
            ("dispatcher_deliveries_failed", stats.failed,
             "Deliveries failed for good, until replayed or pruned"),
            ("dispatcher_oldest_due_delivery_age_seconds", stats.oldest_due_seconds,
             "How long the oldest due, unclaimed delivery has waited (0: none waits)"),
            ("dispatcher_subscriptions_disabled", stats.disabled_subscriptions,
             "Subscriptions disabled (by an operator, a 410 Gone, or failing too long)"),
            ("dispatcher_subscriptions_failing", stats.failing_subscriptions,
             "Enabled subscriptions whose deliveries fail with no success since"),
        ):
            yield GaugeMetricFamily(name, text, value=value)


class _Joined(Collector):
    def __init__(self, *parts: Any) -> None:
        self.parts = parts

    def collect(self) -> Iterable[Metric]:
        for part in self.parts:
            yield from part.collect()


def _counted() -> Any:
    """Every process's counters from the directory, or this process's own registry."""
    if MULTIPROC_DIR is not None:
        return MultiProcessCollector(None, MULTIPROC_DIR)
    return REGISTRY


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def counted_now() -> Collector:
    """The counters and histograms as they are now. Read before the queue's state: an
    attempt is counted after its commit, so the gauges then include every counted one."""
    return _Snapshot(list(_counted().collect()))


def render(counted: Collector, stats: QueueStats | None) -> bytes:
    """``/metrics`` of an API process: the counters and histograms, and the queue gauges."""
    return generate_latest(_Joined(counted, QueueCollector(stats)))


def authorized(header: str | None, token: str | None) -> bool:
    """No token configured, or ``Authorization: Bearer <token>`` (compared in constant
    time)."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode())


# ---- the worker's own /metrics ---------------------------------------------------------------

class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # scrapes every few seconds would drown the log


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


def _error(start_response: Callable[..., Any], status: str, code: str, message: str,
           *headers: tuple[str, str]) -> list[bytes]:
    body = error_bytes(code, message)
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), *headers])
    return [body]


def serve_process_metrics(host: str, port: int, token: str | None) -> Callable[[], None]:
    """Serve this process's metrics at ``http://host:port/metrics`` from a thread (for
    ``dispatcher worker``, which has no API); returns the function that stops it."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            return _error(start_response, "404 Not Found", "not_found", "no such path")
        if environ.get("REQUEST_METHOD") != "GET":
            return _error(start_response, "405 Method Not Allowed", "method_not_allowed",
                          "use GET", ("Allow", "GET"))
        if not authorized(environ.get("HTTP_AUTHORIZATION"), token):
            return _error(start_response, "401 Unauthorized", "unauthorized",
                          "send 'Authorization: Bearer <metrics token>'")
        body = generate_latest(REGISTRY)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                  ("Content-Length", str(len(body)))])
        return [body]

    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
