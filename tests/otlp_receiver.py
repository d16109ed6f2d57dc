"""`OtlpReceiver`: a real OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf), decoding with opentelemetry-proto."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.http_sink import Answer, HttpSink

SERVER, CLIENT, INTERNAL = 2, 3, 1  # opentelemetry.proto.trace.v1.Span.SpanKind


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived, ids in hex, attributes and its resource's attributes as plain values."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[str] = field(default_factory=list)
    error: bool = False

    @property
    def service(self) -> str:
        return self.resource.get("service.name", "")


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of an ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_attributes(span.attributes),
                        resource=resource,
                        events=[event.name for event in span.events],
                        error=span.status.code == 2,
                    )
                )
    return spans


class OtlpReceiver(HttpSink[ReceivedSpan]):
    """Listens on 127.0.0.1 (a free port) and keeps every span exported to it; thread-safe."""

    def take(self, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        if path != "/v1/traces":
            return _NOT_FOUND
        self.keep(decode(body))
        return _EXPORTED

    @property
    def spans(self) -> list[ReceivedSpan]:
        return self.received

    @property
    def endpoint(self) -> str:
        """The value of OTEL_EXPORTER_OTLP_ENDPOINT that sends spans here."""
        return self.origin

    def wait_for(
        self, found: Callable[[list[ReceivedSpan]], bool], timeout: float = 15.0, what: str = "the spans"
    ) -> list[ReceivedSpan]:
        """Every span received, once `found(spans)` holds (AssertionError after `timeout` seconds)."""
        return self.wait_until(
            found, timeout, lambda spans: f"{what} did not come within {timeout} s; received: {describe(spans)}"
        )

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._changed:
            return [span for span in self.received if span.trace_id == trace_id]


_NOT_FOUND = Answer(404)
_EXPORTED = Answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")


def describe(spans: list[ReceivedSpan]) -> str:
    """The spans as lines `service name span-id<-parent-id trace`, for assertion messages."""
    return "\n".join(f"{s.service} {s.name!r} {s.span_id}<-{s.parent_id or '-'} {s.trace_id[:8]}" for s in spans)


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [span for span in spans if span.parent_id == parent.span_id]
