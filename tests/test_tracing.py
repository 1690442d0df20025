"""OpenTelemetry tracing (the ``otel`` extra), with the SDK's in-memory exporter: one event to
two subscriptions makes the request's span and two attempt spans linked to it, each holding
httpx's client span; subscribers receive nothing that names the trace; and the standard
environment decides whether tracing is on."""

from __future__ import annotations

import json

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dispatcher import tracing

from .conftest import ADMIN_TOKEN
from .harness import AppServer, Receiver, poll
from .test_delivery import settled, subscribe

PUBLISHER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PUBLISHER_PARENT = f"00-{PUBLISHER_TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
     False),
    ({"OTEL_SERVICE_NAME": "dispatcher"}, False),  # naming the service asks for nothing
])
def test_the_environment_decides(env, on):
    assert tracing.wanted(env) is on


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    tracing.start([exporter])
    try:
        yield exporter
    finally:
        tracing.stop()


def test_one_event_to_two_subscriptions_is_one_request_span_and_two_linked_attempts(
        traced, make_settings):
    with AppServer(make_settings()) as server, Receiver() as one, Receiver() as two, \
            httpx.Client(base_url=server.url, timeout=30,
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        for receiver in (one, two):
            subscribe(admin, receiver.url, event_types=["order.*"])
        accepted = admin.post("/v1/events", json={"type": "order.placed", "data": {"n": 1}},
                              headers={"traceparent": PUBLISHER_PARENT})
        assert accepted.status_code == 202, accepted.text
        event_id = accepted.json()["id"]
        settled(admin, event_id, count=2)

        def attempts():
            found = [s for s in traced.get_finished_spans() if s.name == "deliver order.placed"]
            return found if len(found) == 2 else None

        spans = poll(attempts, message="two attempt spans")
        finished = traced.get_finished_spans()
        [request] = [s for s in finished if s.kind == SpanKind.SERVER
                     and s.attributes.get("http.route") == "/v1/events"]
        # The publisher's trace is honoured: the request's span is in it.
        assert f"{request.context.trace_id:032x}" == PUBLISHER_TRACE
        for span in spans:
            [link] = span.links
            assert (link.context.trace_id, link.context.span_id) == (
                request.context.trace_id, request.context.span_id)
            assert span.parent is None  # a root of its own, linked to the request
            assert span.attributes["dispatcher.event_id"] == event_id
            assert span.attributes["dispatcher.attempt"] == 1
            [client] = [s for s in finished if s.kind == SpanKind.CLIENT
                        and s.parent is not None and s.parent.span_id == span.context.span_id]
            assert client.context.trace_id == span.context.trace_id
        assert {s.attributes["dispatcher.subscription_id"] for s in spans} == {
            d["subscription_id"] for d in admin.get(
                f"/v1/events/{event_id}/deliveries").json()["data"]}
        # Nothing a subscriber receives names a trace or a span.
        ids = {PUBLISHER_TRACE, f"{request.context.span_id:016x}"} | {
            f"{s.context.span_id:016x}" for s in finished}
        for got in one.requests + two.requests:
            assert not {"traceparent", "tracestate", "baggage"} & set(got.headers)
            seen = json.dumps(got.headers) + got.body.decode()
            assert not [i for i in ids if i in seen], got.headers


def test_off_no_span_is_made_and_no_context_is_stored(make_settings, database_url):
    from .databases import scalar

    assert not tracing.active()
    with AppServer(make_settings()) as server, Receiver() as receiver, \
            httpx.Client(base_url=server.url, timeout=30,
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        subscribe(admin, receiver.url)
        event = admin.post("/v1/events", json={"type": "a.b", "data": {}},
                           headers={"traceparent": PUBLISHER_PARENT}).json()
        settled(admin, event["id"])
    assert scalar(database_url, "SELECT trace_context FROM event WHERE id = :id",
                  id=event["id"]) is None
    assert "traceparent" not in receiver.requests[0].headers


def test_the_environment_turns_it_on_in_a_real_process(database_url, tmp_path):
    from .harness import ServeProcess

    serve = ServeProcess(database_url, tmp_path / "serve.log", OTEL_TRACES_EXPORTER="console",
                         OTEL_BSP_SCHEDULE_DELAY="100", OTEL_SERVICE_NAME="dispatcher-test")
    with Receiver() as receiver:
        serve.start()
        try:
            with httpx.Client(base_url=serve.url, timeout=30,
                              headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
                subscribe(admin, receiver.url)
                event = admin.post("/v1/events", json={"type": "a.b", "data": {}}).json()
                settled(admin, event["id"])
                poll(lambda: '"name": "deliver a.b"' in serve.log(), 10,
                     message="the attempt's span printed")
        finally:
            serve.stop()
    log = serve.log()
    assert '"service.name": "dispatcher-test"' in log and '"http.route": "/v1/events"' in log
    assert "traceparent" not in receiver.requests[0].headers
