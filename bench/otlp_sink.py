"""For bench/tracing.sh: an OTLP/HTTP trace receiver that decodes each export and counts its spans, as fast as it can.

Usage: python bench/otlp_sink.py PORT   (SIGTERM or SIGINT stops it; it prints how many spans it took)
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import uvloop
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from wharf.embedded_http import EmbeddedServer, listen, read_body

HOST = "127.0.0.1"
_OK = [(b"content-type", b"application/x-protobuf"), (b"content-length", b"0")]


class Sink:
    def __init__(self) -> None:
        self.spans = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = ExportTraceServiceRequest.FromString(await read_body(receive, 64 * 2**20, 30.0))
        self.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        await send({"type": "http.response.start", "status": 200, "headers": _OK})
        await send({"type": "http.response.body", "body": b""})


async def serve(port: int) -> None:
    sink = Sink()
    server = EmbeddedServer(sink)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    task = await server.start(listen(HOST, port))
    print(f"OTLP sink on {HOST}:{port}", flush=True)
    await stop.wait()
    server.should_exit = True
    await task
    print(f"spans taken: {sink.spans}", flush=True)


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
