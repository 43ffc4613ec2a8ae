"""OpenTelemetry tracing with W3C trace context carried in NATS headers both ways, so a span
started by a webhook continues in every consumer downstream."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import Link, Span, SpanKind

_provider: TracerProvider | None = None
_recording = False


def configure_tracing(
    service: str,
    instance: str,
    otlp_endpoint: str | None = None,
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """Install a tracer provider; export over OTLP/HTTP when an endpoint is configured."""
    global _provider, _recording
    recording = exporter is not None or bool(otlp_endpoint)
    _recording = recording
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": f"switchboard-{service}", "service.instance.id": instance}
        ),
        # With nowhere to send spans, record none: trace ids still propagate through the
        # headers (correlation survives), without paying for span bookkeeping per message.
        sampler=ParentBased(ALWAYS_ON) if recording else ALWAYS_OFF,
    )
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if _provider is None:
        trace.set_tracer_provider(provider)
    _provider = provider
    global _tracer
    _tracer = None
    return provider


_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    """The runtime's tracer (cached: creating one per call was measurable per webhook)."""
    global _tracer
    if _tracer is None:
        _tracer = (_provider or trace.get_tracer_provider()).get_tracer("switchboard")
    return _tracer


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add ``traceparent``/``tracestate`` of the current span to ``headers`` (in place)."""
    inject(headers)
    return headers


def context_from_headers(headers: Mapping[str, str] | None) -> otel_context.Context:
    return extract({k.lower(): v for k, v in (headers or {}).items()})


@contextmanager
def consume_span(name: str, headers: Mapping[str, str] | None, **attrs: Any) -> Iterator[Span]:
    """A consumer span whose parent is the producer's span found in the message headers.

    When spans are not recorded (no exporter), no span is made: the producer's context is
    current as it came, so what the handler publishes carries its trace on (as
    ``server_span`` passes a caller's through), without a span's bookkeeping per message.
    """
    if not _recording:
        parent = context_from_headers(headers)
        token = otel_context.attach(parent)
        try:
            yield trace.get_current_span(parent)
        finally:
            otel_context.detach(token)
        return
    with tracer().start_as_current_span(
        name, context=context_from_headers(headers), kind=SpanKind.CONSUMER, attributes=attrs
    ) as span:
        yield span


class _CallersTrace:
    """``server_span`` when spans are not recorded: the caller's own ``traceparent`` and
    ``tracestate``, passed through. A plain class: the generator-based context manager
    cost 1.2 us per webhook where this costs 0.4 (timeit)."""

    __slots__ = ("headers",)

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = {k: headers[k] for k in ("traceparent", "tracestate") if k in headers}

    def __enter__(self) -> dict[str, str]:
        return self.headers

    def __exit__(self, *exc: object) -> None:
        return None


def server_span(
    name: str, headers: Mapping[str, str], **attrs: Any
) -> AbstractContextManager[dict[str, str]]:
    """A server span continuing the caller's trace; yields the headers to pass downstream.

    When spans are not recorded (no exporter), no span is made at all: the caller's own
    ``traceparent``/``tracestate`` pass through unchanged, which keeps the correlation
    for free on the hot path.
    """
    if not _recording:
        return _CallersTrace(headers)
    return _recorded_server_span(name, headers, attrs)


@contextmanager
def _recorded_server_span(
    name: str, headers: Mapping[str, str], attrs: dict[str, Any]
) -> Iterator[dict[str, str]]:
    with tracer().start_as_current_span(
        name, context=context_from_headers(headers), kind=SpanKind.SERVER, attributes=attrs
    ):
        yield inject_headers({})


@contextmanager
def batch_span(name: str, headers: list[Mapping[str, str] | None], **attrs: Any) -> Iterator[Span]:
    """One span for a batch, linked to the producer span of every message in it."""
    links = []
    for h in headers:
        ctx = trace.get_current_span(context_from_headers(h)).get_span_context()
        if ctx.is_valid:
            links.append(Link(ctx))
    with tracer().start_as_current_span(
        name, kind=SpanKind.CONSUMER, links=links, attributes=attrs
    ) as span:
        yield span


@contextmanager
def produce_span(name: str, **attrs: Any) -> Iterator[Span]:
    """A producer span, child of the current one; none when spans are not recorded (the
    current context, e.g. a consumed message's, is what ``inject_headers`` passes on)."""
    if not _recording:
        yield trace.get_current_span()
        return
    with tracer().start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attrs) as span:
        yield span
