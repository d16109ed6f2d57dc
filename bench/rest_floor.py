"""The floor of REST serving on Wharf's HTTP stack: a bare ASGI app on the same embedded uvicorn (httptools,
uvloop, Wharf's listener limits) that reads the body, parses its JSON with orjson and answers a fixed V2 reply.
No routing, no model, no metrics: what any request costs before Wharf's own work. bench/floors.py measures Wharf
against it.

    python bench/rest_floor.py PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import orjson
import uvloop

from wharf.embedded_http import EmbeddedServer, listen

REPLY = b'{"model_name":"iris","outputs":[{"name":"predict","shape":[1],"datatype":"INT64","data":[0]}]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(REPLY)).encode())]


async def body_of(receive: Any) -> bytes:
    """The request's whole body, from its ASGI messages."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = await body_of(receive)
    if body:
        orjson.loads(body)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": REPLY})


async def serve(port: int, asgi: Any = app) -> None:
    """Serve `asgi` on 127.0.0.1:`port` until SIGTERM or SIGINT."""
    server = EmbeddedServer(asgi)
    task = await server.start(listen("127.0.0.1", port))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.should_exit = True
    await task


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
