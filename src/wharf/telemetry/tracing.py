"""OpenTelemetry traces of requests, configured by the standard `OTEL_*` environment variables.

Each process calls `configure` once at start. Tracing is on only where an OTLP endpoint is set
(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT) and OTEL_SDK_DISABLED is not `true`; then
spans go through a BatchSpanProcessor (OTEL_BSP_*) to the OpenTelemetry SDK's OTLP exporter, over http/protobuf
(the default) or grpc (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL), sampled as
OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG say (default `parentbased_always_on`). The resource is the
process's service name and attributes, under what OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME say (they win).
Trace context travels as W3C `traceparent`/`tracestate` (and `baggage`), or as OTEL_PROPAGATORS says.

What it costs. Off (the default), the SDK is never imported and instrumented code reads the module attribute
`enabled` and does nothing else: no span, no context, no header parsing; callers test `enabled` before they call
anything here on a request's path. On, a request that is not sampled costs its server span (about 11 µs: the
header lookup, the sampler, a non-recording span made current) and about 2 µs per child it skips (no child span
is made under an unsampled one). A sampled span costs the SDK about 8 µs to make and some 15-30 µs more to encode
and export on the processor's thread, in the same process (bench/tracing.sh measures a model server's requests).

The helpers: `server_span` continues the trace of incoming headers (HTTP headers or gRPC metadata, as pairs),
`span` opens a child of the current span, `recorded` makes a finished span from times taken elsewhere (worker
threads), `outgoing_headers`/`outgoing_metadata` put the current span's context in the headers of a call out.
`shutdown` flushes what is queued; it runs at exit, and the processes call it on their way down.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from wharf.errors import ConfigurationError

#: Whether spans are made: read on every request path, so a plain module attribute.
enabled = False

ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
Pairs = Iterable[tuple[bytes | str, bytes | str]]  # HTTP headers (ASGI's bytes) or gRPC metadata (str)
Attributes = Mapping[str, str | int | float | bool]

_provider: Any = None  # the SDK's TracerProvider, while on
_tracer: Any = None
_api: Any = None  # the modules of the OpenTelemetry API, imported by `configure`


def configure(service_name: str, attributes: Attributes | None = None) -> bool:
    """Turn tracing on for this process if the environment sets an OTLP endpoint; whether it is on.

    `service_name` is `service.name` unless OTEL_SERVICE_NAME says otherwise; `attributes` join the resource
    (OTEL_RESOURCE_ATTRIBUTES win over them). ConfigurationError for an unknown protocol or a missing SDK.
    """
    global enabled, _provider, _tracer, _api
    if enabled:
        return True
    if not any(os.environ.get(name) for name in ENDPOINTS) or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    protocol = next((os.environ[name] for name in PROTOCOLS if os.environ.get(name)), "http/protobuf").strip()
    if protocol not in ("http/protobuf", "grpc"):
        raise ConfigurationError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} is not supported: use http/protobuf or grpc"
        )
    try:
        from opentelemetry import context, propagate, trace
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as e:
        raise ConfigurationError(
            f"tracing is asked for (OTEL_EXPORTER_OTLP_*) but {e.name} is missing: pip install 'wharf[tracing]'"
        ) from None
    ours = Resource.create({"service.name": service_name, **(attributes or {})})
    provider = TracerProvider(resource=ours.merge(OTELResourceDetector().detect()), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _api = _Api(context, propagate, trace)
    _provider, _tracer = provider, provider.get_tracer("wharf")
    atexit.register(shutdown)
    enabled = True
    return True


def shutdown() -> None:
    """Export the spans still queued and turn tracing off (at exit, and on each process's way down)."""
    global enabled, _provider
    provider, _provider, enabled = _provider, None, False
    if provider is not None:
        provider.shutdown()


class _Api:
    """The OpenTelemetry API modules the helpers use (imported only once tracing is on)."""

    def __init__(self, context: Any, propagate: Any, trace: Any) -> None:
        self.context, self.propagate, self.trace = context, propagate, trace
        self.server, self.client = trace.SpanKind.SERVER, trace.SpanKind.CLIENT
        self.getter = _PairsGetter()


class _PairsGetter:
    """Reads a propagator's fields out of header pairs: ASGI's names (lower-case bytes) or gRPC metadata keys
    (lower-case str), compared as they are."""

    def get(self, carrier: Pairs, key: str) -> list[str] | None:
        wanted = key.encode()
        found = [_text(v) for k, v in carrier if k == wanted or k == key]
        return found or None

    def keys(self, carrier: Pairs) -> list[str]:
        return [_text(k) for k, _ in carrier]


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def server_span(name: str, headers: Pairs, attributes: Attributes | None = None) -> Any:
    """A SERVER span made current, continuing the trace the incoming `headers` carry (a new one where they carry
    none); a context manager yielding the span. Call only while `enabled`."""
    parent = _api.propagate.extract(headers, getter=_api.getter)
    return _tracer.start_as_current_span(name, context=parent, kind=_api.server, attributes=attributes)


@contextlib.contextmanager
def span(name: str, attributes: Attributes | None = None, client: bool = False) -> Iterator[Any]:
    """A child of the current span, made current (kind CLIENT with `client`: a call out); nothing while off or
    while the current span is not sampled (its children would not be either: making them would only cost)."""
    if not enabled or not _sampled(_api.trace.get_current_span()):
        yield None
        return
    kind = _api.client if client else _api.trace.SpanKind.INTERNAL
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes) as made:
        yield made


def current() -> Any:
    """The current context, to hand to `recorded` from another thread; None where its span is not sampled. Call
    only while `enabled`."""
    context = _api.context.get_current()
    return context if _sampled(_api.trace.get_current_span(context)) else None


def _sampled(span: Any) -> bool:
    """Whether `span` was sampled (ended or not): only then are its children."""
    return bool(span.get_span_context().trace_flags.sampled)


def recorded(
    name: str, parent: Any, start_ns: int, end_ns: int | None = None, attributes: Attributes | None = None
) -> Any:
    """A span under `parent` (a context from `current`, or a span) that started at `start_ns` (time.time_ns());
    ended at `end_ns` when given, else left open for the caller to `end()`. Call only while `enabled`."""
    if not isinstance(parent, dict):  # a span: the context that holds it
        parent = _api.trace.set_span_in_context(parent)
    made = _tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes)
    if end_ns is not None:
        made.end(end_time=end_ns)
    return made


def annotate(attributes: Attributes) -> None:
    """Set `attributes` on the current span. Call only while `enabled`."""
    _api.trace.get_current_span().set_attributes(attributes)


def event(name: str, attributes: Attributes | None = None) -> None:
    """Add an event to the current span (a retry, a refusal). Call only while `enabled`."""
    _api.trace.get_current_span().add_event(name, attributes)


def failed(status_code: int) -> None:
    """Mark the current span as failed when an HTTP status says the server failed (5xx). Call only while
    `enabled`."""
    if status_code >= 500:
        current_span = _api.trace.get_current_span()
        current_span.set_status(_api.trace.StatusCode.ERROR, f"HTTP {status_code}")


def trace_headers() -> dict[str, str]:
    """The current span's context as headers (`traceparent`, `tracestate`, `baggage`); empty while off."""
    carrier: dict[str, str] = {}
    if enabled:
        _api.propagate.inject(carrier)
    return carrier


def outgoing_headers(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """HTTP `headers` (bytes) with the current span's trace context in place of the trace headers they had."""
    fields = {name.encode() for name in _api.propagate.get_global_textmap().fields}
    kept = [(k, v) for k, v in headers if k not in fields]
    return kept + [(k.encode("latin-1"), v.encode("latin-1")) for k, v in trace_headers().items()]


def outgoing_metadata(metadata: Sequence[tuple[str, str | bytes]]) -> tuple[tuple[str, str | bytes], ...]:
    """gRPC `metadata` with the current span's trace context in place of the trace metadata it had."""
    fields = _api.propagate.get_global_textmap().fields
    return (*((k, v) for k, v in metadata if k not in fields), *trace_headers().items())
