"""OpenTelemetry tracing, optional (``pip install 'dispatcher[otel]'``) and on only when the
standard ``OTEL_*`` environment asks for it (``wanted``).

What is traced: each API request (a server span, FastAPI's instrumentation; a publisher's
``traceparent`` is honoured), and each delivery attempt: a span of ours, linked to the span
of the request that accepted its event (its context is stored with the event), holding the
HTTP client span of httpx's instrumentation. Nothing goes to subscribers that names a trace:
the process's propagator reads incoming context and never writes any (``ExtractOnly``).

Off, the hot paths pay one test of a module global per event and per attempt.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Job

log = logging.getLogger("dispatcher.tracing")

_tracer: Any = None  # the tracer of attempts, while tracing is on
_provider: Any = None
_previous_propagator: Any = None
_NOTHING = contextlib.nullcontext()


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard OpenTelemetry environment asks for traces: an exporter named
    (``OTEL_TRACES_EXPORTER`` other than ``none``) or an OTLP endpoint given, and the SDK
    not disabled (``OTEL_SDK_DISABLED``)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or
                env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def active() -> bool:
    return _tracer is not None


def from_environment() -> None:
    """Start tracing once per process if the environment asks (and the extra is installed);
    a no-op when it is on already or not wanted."""
    if _tracer is not None or not wanted():
        return
    try:
        exporters = _exporters(os.environ.get("OTEL_TRACES_EXPORTER", "otlp"))
    except ImportError:
        log.warning("OTEL_* asks for traces, but OpenTelemetry is not installed: "
                    "pip install 'dispatcher[otel]'; tracing stays off")
        return
    except ValueError as exc:
        log.warning("%s; tracing stays off", exc)
        return
    start(exporters, batch=True)


def _exporters(names: str) -> list[Any]:
    made: list[Any] = []
    for name in (n.strip().lower() for n in names.split(",") if n.strip()):
        if name == "otlp":
            protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            if protocol != "http/protobuf":
                raise ValueError(f"OTLP protocol {protocol} is not shipped; use http/protobuf")
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            made.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter
            made.append(ConsoleSpanExporter())
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER={name} is not one dispatcher knows "
                             "(otlp, console)")
    return made


def start(exporters: list[Any], *, batch: bool = False) -> None:
    """Trace to ``exporters`` from now on (tests give the SDK's in-memory exporter)."""
    global _tracer, _provider, _previous_propagator
    from opentelemetry import propagate
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                               "dispatcher")})
    resource = resource.merge(OTELResourceDetector().detect())
    _provider = TracerProvider(resource=resource)
    for exporter in exporters:
        _provider.add_span_processor(BatchSpanProcessor(exporter) if batch
                                     else SimpleSpanProcessor(exporter))
    _previous_propagator = propagate.get_global_textmap()
    propagate.set_global_textmap(_extract_only(_previous_propagator))
    _tracer = _provider.get_tracer("dispatcher")


def stop() -> None:
    """Tracing off again (what ``start`` set undone; spans still queued are exported)."""
    global _tracer, _provider, _previous_propagator
    if _provider is None:
        return
    from opentelemetry import propagate

    _provider.shutdown()
    propagate.set_global_textmap(_previous_propagator)
    _tracer = _provider = _previous_propagator = None


def _extract_only(inner: Any) -> Any:
    from opentelemetry.propagators.textmap import TextMapPropagator

    class ExtractOnly(TextMapPropagator):
        """Reads a caller's trace context; writes none, so no request to a subscriber
        carries a trace id."""

        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
            return inner.extract(carrier, context) if getter is None \
                else inner.extract(carrier, context, getter)

        def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
            return None

        @property
        def fields(self) -> set[str]:
            return set()

    return ExtractOnly()


def instrument_app(app: Any) -> None:
    """A server span for each request to ``app``, when tracing is on."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider,
                                       excluded_urls="/healthz,/readyz,/metrics,/ui/static")


def instrument_client(client: Any) -> Any:
    """``client`` with a client span for each request it sends, when tracing is on."""
    if _provider is not None:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_provider)
    return client


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (the request accepting an event), kept
    with the event so that its attempts can link to it; None when tracing is off."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _linked(parent: str | None) -> list[Any]:
    from opentelemetry.trace import Link, SpanContext, TraceFlags

    try:
        _, trace_id, span_id, flags = (parent or "").split("-")
        context = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True,
                              trace_flags=TraceFlags(int(flags, 16)))
    except ValueError:
        return []
    return [Link(context)] if context.is_valid else []


def attempt_span(job: Job) -> contextlib.AbstractContextManager[Any]:
    """The span of one delivery attempt, linked to the span of the request that accepted
    its event (``job.trace_context``); when tracing is off, a shared no-op (nothing is made
    per attempt)."""
    if _tracer is None:
        return _NOTHING
    return _attempt(job)


@contextlib.contextmanager
def _attempt(job: Job) -> Iterator[Any]:
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind

    attributes = {"dispatcher.delivery_id": job.delivery_id,
                  "dispatcher.event_id": job.event_id,
                  "dispatcher.subscription_id": job.subscription_id,
                  "dispatcher.attempt": job.number}
    # A root of its own (an empty context), linked, not parented, to the request: an
    # attempt may come days after the request ended, as a message consumer's span would.
    with _tracer.start_as_current_span(f"deliver {job.event_type}", kind=SpanKind.PRODUCER,
                                       links=_linked(job.trace_context),
                                       attributes=attributes, context=Context()) as span:
        yield span
