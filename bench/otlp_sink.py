"""For bench/tracing.sh: an OTLP/HTTP trace receiver that decodes each export and counts its spans, as fast as it can
(bench/event_sink.py's sink, counting spans).

Usage: python bench/otlp_sink.py PORT   (SIGTERM or SIGINT stops it; it prints how many spans it took)
"""

from __future__ import annotations

import sys

import uvloop
from event_sink import serve
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def spans(body: bytes) -> int:
    """The spans of one OTLP/HTTP export (protobuf)."""
    request = ExportTraceServiceRequest.FromString(body)
    return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), "spans", spans, b"application/x-protobuf"))
