"""uvicorn embedded in a process that owns its event loop and its signals (model server, gateway, daemon)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import weakref
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
    """An ASGI request's whole body, at most `limit` bytes, all of it received within `timeout` seconds (give or
    take `_BodyDeadlines.TICK_S`)."""
    chunks: list[bytes] = []
    size = 0
    task = asyncio.current_task()
    assert task is not None
    deadlines = _BodyDeadlines.of(asyncio.get_running_loop())
    deadlines.watch(task, timeout)
    try:
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
    except asyncio.CancelledError:
        if not deadlines.expired(task):
            raise
        task.uncancel()
        raise InvalidInput(f"request body not received within {timeout} s") from None
    finally:
        deadlines.unwatch(task)
    if not chunks:
        return chunk  # the whole body came in one message
    chunks.append(chunk)
    return b"".join(chunks)


class _BodyDeadlines:
    """The requests of one event loop that wait for their bodies; each past its deadline is cancelled, at the next
    check (every `TICK_S` while requests come). A timer per request would cost more than reading most bodies: the
    body has usually come with the headers, and `receive` returns at once."""

    TICK_S = 0.25
    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _BodyDeadlines] = weakref.WeakKeyDictionary()
    _last: _BodyDeadlines | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._checking = False
        self._active = False  # whether a request came since the last check

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _BodyDeadlines:
        last = cls._last
        if last is not None and last._loop is loop:  # a process serves from one loop: skip the weak mapping
            return last
        deadlines = cls._by_loop.get(loop)
        if deadlines is None:
            deadlines = cls._by_loop[loop] = cls(loop)
        cls._last = deadlines
        return deadlines

    def watch(self, task: asyncio.Task[Any], timeout: float) -> None:
        self._waiting[task] = self._loop.time() + timeout
        self._active = True
        if not self._checking:
            self._checking = True
            self._loop.call_later(min(self.TICK_S, timeout), self._check)

    def unwatch(self, task: asyncio.Task[Any]) -> None:
        self._waiting.pop(task, None)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether `task` was cancelled here (once: it is forgotten)."""
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _check(self) -> None:
        now = self._loop.time()
        for task, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[task]
                self._expired.add(task)
                task.cancel()
        self._checking = bool(self._waiting) or self._active
        self._active = False
        if self._checking:
            self._loop.call_later(self.TICK_S, self._check)
