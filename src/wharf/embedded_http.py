"""uvicorn embedded in a process that owns its event loop and its signals (model server, gateway, daemon)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn

from wharf.errors import InvalidInput, PayloadTooLarge

# What uvicorn logs, as warnings, for every Upgrade request: Wharf serves no WebSocket on purpose (`ws="none"`).
_UPGRADE_ADVICE = ("Unsupported upgrade request", "No supported WebSocket library detected")


def _not_upgrade_advice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_UPGRADE_ADVICE)


class EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handling of its own: the embedding process decides when to stop (`should_exit`).

    Every Wharf HTTP server is plain HTTP/1.1 on httptools: an Upgrade (WebSocket) request is answered as a
    plain HTTP request, no lifespan events, no access log (Wharf logs and counts requests itself), no `server`
    header; `options` are the other `uvicorn.Config` settings.
    """

    def __init__(self, app: Any, **options: Any) -> None:
        logging.getLogger("uvicorn.error").addFilter(_not_upgrade_advice)  # a set: added once
        defaults = {"lifespan": "off", "access_log": False, "proxy_headers": False, "server_header": False}
        super().__init__(uvicorn.Config(app, http="httptools", ws="none", log_config=None, **(defaults | options)))

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def start(self, listener: socket.socket) -> asyncio.Task[None]:
        """Serve on `listener` in a task; return it once the server accepts connections."""
        task = asyncio.create_task(self.serve(sockets=[listener]))
        while not self.started:
            if task.done():
                task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        return task


def listen(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on `host:port` (0: any free port), shared between processes with `reuse_port`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def read_body(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int, timeout: float) -> bytes:
    """An ASGI request's whole body, at most `limit` bytes, all of it received within `timeout` seconds."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise InvalidInput("client disconnected before sending the whole body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                if not message.get("more_body"):
                    break
                chunks.append(chunk)
    except TimeoutError:
        raise InvalidInput(f"request body not received within {timeout} s") from None
    if not chunks:
        return chunk  # the whole body came in one message
    chunks.append(chunk)
    return b"".join(chunks)
