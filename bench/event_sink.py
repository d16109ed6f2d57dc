"""For bench/gateway.sh: a payload log sink that reads each event and answers 200, as fast as it can.
bench/otlp_sink.py is the same sink counting the spans of each body (`serve` with a `count` of its own).

Usage: python bench/event_sink.py PORT   (SIGTERM or SIGINT stops it; it prints how many events it took)
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from typing import Any

import uvloop

from wharf.embedded_http import EmbeddedServer, listen, read_body

HOST = "127.0.0.1"


def one(body: bytes) -> int:
    """A payload event's body holds one event."""
    return 1


class Sink:
    """Reads each request's body, adds what `count` finds in it to `taken`, answers 200 with an empty body."""

    def __init__(self, count: Callable[[bytes], int], content_type: bytes | None) -> None:
        self.taken = 0
        self._count = count
        self._ok = [(b"content-length", b"0")] + ([(b"content-type", content_type)] if content_type else [])

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.taken += self._count(await read_body(receive, 64 * 2**20, 30.0))
        await send({"type": "http.response.start", "status": 200, "headers": self._ok})
        await send({"type": "http.response.body", "body": b""})


async def serve(
    port: int, what: str = "events", count: Callable[[bytes], int] = one, content_type: bytes | None = None
) -> None:
    """Serve a `Sink` on `port` until SIGTERM or SIGINT, then print how many of `what` it took."""
    sink = Sink(count, content_type)
    server = EmbeddedServer(sink)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    task = await server.start(listen(HOST, port))
    print(f"sink on {HOST}:{port}, counting {what}", flush=True)
    await stop.wait()
    server.should_exit = True
    await task
    print(f"{what} taken: {sink.taken}", flush=True)


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
