"""uvicorn embedded in a process that owns its event loop and its signals (model server, gateway, daemon), with
the limits every listener keeps before and around its requests, and the reading of request bodies.

Limits (`HttpLimits`, from `WHARF_HTTP_*`), enforced by `_GuardedProtocol` before the application sees a request:
- a new connection must send its first request's headers within `header_timeout_s`, and a request whose headers
  have begun to come must finish them within it; past it the connection closes (408 if part of a request came);
- request line and headers above `max_header_bytes`, or more than `max_headers` headers: 431 (checked after each
  read of a head that did not come whole, and once it is complete);
- at most `max_connections` open connections: beyond them an idle connection is closed to make room, the oldest
  of those that never sent a request first, else the one kept alive longest since its last answer; if none is
  idle, the new connection's request is answered 503. So idle connections cannot lock clients out, and a client
  that uses its connection (a health probe on a kept-alive one) is the last to lose it;
- idle keep-alive connections close after uvicorn's `timeout_keep_alive` (each process's keep-alive setting).
These refusals are `{"error": ...}` JSON bodies with `connection: close`; the connection then reads and drops what
the client still sends for `_LINGER_S` (so that the client reads the answer rather than a reset) and closes.

Cost per request: a few attribute and dict-key checks and one more Python call, about 1 us of CPU (measured against
uvicorn's own protocol feeding keep-alive requests: 25 us there). Idle connections are not tracked per request but
looked for only when the server is full; a timer per connection (its first request), and per later request only
when its headers did not come in one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import resource
import socket
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httptools
import orjson
import uvicorn
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from wharf.errors import InvalidInput, PayloadTooLarge

Receive = Callable[[], Awaitable[dict[str, Any]]]

_LINGER_S = 1.0  # how long a refused connection reads and drops what its client still sends before closing


class HttpLimits(BaseSettings):
    """Limits of every HTTP listener of a process (environment prefix `WHARF_HTTP_`)."""

    model_config = SettingsConfigDict(env_prefix="WHARF_HTTP_", extra="forbid")

    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a new connection must send its first request's headers within this, and a request's headers "
        "once begun must all come within this; else the connection closes",
    )
    max_header_bytes: int = Field(32 * 2**10, ge=1024, description="larger request lines and headers get 431")
    max_headers: int = Field(100, ge=1, description="requests with more headers get 431")
    max_connections: int = Field(
        1024,
        ge=1,
        description="open connections per listener; beyond them the longest idle one closes, or if none is idle "
        "the new one gets 503 (at most half the process's open-file limit)",
    )


class EmbeddedServer(uvicorn.Server):
    """uvicorn without signal handling of its own: the embedding process decides when to stop (`should_exit`).

    Every Wharf HTTP server is plain HTTP/1.1 on httptools within `limits` (default: `HttpLimits()`, read from the
    environment): an Upgrade (WebSocket) request is answered as a plain HTTP request, no lifespan events, no access
    log (Wharf logs and counts requests itself), no `server` header; `options` are the other `uvicorn.Config`
    settings.
    """

    def __init__(self, app: Any, limits: HttpLimits | None = None, **options: Any) -> None:
        limits = limits or HttpLimits()
        listener = _Listener(limits, min(limits.max_connections, _raise_open_files_limit() // 2))
        protocol = functools.partial(_GuardedProtocol, listener=listener)
        defaults = {"lifespan": "off", "access_log": False, "proxy_headers": False, "server_header": False}
        http: Any = protocol  # uvicorn takes a protocol class; a factory is called the same way
        super().__init__(uvicorn.Config(app, http=http, ws="none", log_config=None, **(defaults | options)))

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


def _raise_open_files_limit() -> int:
    """The process's open-file limit, raised to the hard limit first (as Go's runtime does): connections beyond
    the usual 1024 must not make the process refuse every new socket, its replicas' included."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 2**20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
        return wanted
    return soft if soft != resource.RLIM_INFINITY else 2**20


class _Listener:
    """What the connections of one server share: the limits and the capacity."""

    def __init__(self, limits: HttpLimits, capacity: int) -> None:
        self.limits = limits
        self.capacity = capacity

    @staticmethod
    def make_room(connections: set[Any], new: _GuardedProtocol) -> bool:
        """Close the idle connection of `connections` (but `new`) that is the first to go: of those that never sent
        a request, the oldest; else the one kept alive longest since its last answer. False if none is idle.

        A scan of the connections, run only when the server is full: tracking idle connections as they change
        would cost every request instead."""
        fresh: _GuardedProtocol | None = None
        kept: _GuardedProtocol | None = None
        for connection in connections:
            if connection is new:
                continue
            if connection.cycle is None:  # no request yet (or its headers are still coming)
                if fresh is None or connection.made_at < fresh.made_at:
                    fresh = connection
            elif connection.timeout_keep_alive_task is not None and fresh is None:  # waiting for the next request
                if kept is None or connection.timeout_keep_alive_task.when() < kept.timeout_keep_alive_task.when():
                    kept = connection
        victim = fresh or kept
        if victim is None:
            return False
        victim.evict()
        return True


class _Refusal(Exception):
    """Raised in a parser callback: the request is answered `status` by the listener itself."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol within the listener's limits (see the module docstring)."""

    # Slots, not instance attributes: uvicorn's own fill the instance dict nearly to the size CPython shares keys
    # for, and past it every attribute lookup of uvicorn's slows down (about 1 us a request, measured).
    __slots__ = (
        "_listener",
        "_max_headers",
        "_max_head_bytes",
        "_head_bytes",
        "_head_timer",
        "_refused",
        "_over_capacity",
        "made_at",
    )

    def __init__(self, *args: Any, listener: _Listener, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listener = listener
        self._max_headers = listener.limits.max_headers
        self._max_head_bytes = listener.limits.max_header_bytes
        self._head_bytes = 0  # received since the head being read began (give or take the read it began in)
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False  # answered by the listener: what still comes is dropped until the connection closes
        self._over_capacity = False  # came when the listener was full and nothing idle could make room
        self.made_at = 0.0

    # -- asyncio.Protocol -------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.made_at = self.loop.time()
        if len(self.connections) > self._listener.capacity and not self._listener.make_room(self.connections, self):
            self._over_capacity = True
        self._head_timer = self.loop.call_later(self._listener.limits.header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._stop_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        scope = self.scope  # a request's scope has its "method" once its headers are complete
        if scope is None or "method" not in scope:  # a head was coming: this is more of it
            self._head_bytes += len(data)
        else:  # the request before is whole, or its body is coming: this may begin a head
            self._head_bytes = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # Wharf serves no WebSocket: the application has the request as a plain HTTP one
        except httptools.HttpParserError as e:
            refusal = e.__context__
            self._refuse(refusal if isinstance(refusal, _Refusal) else _Refusal(400, f"invalid HTTP request: {e}"))
            return
        scope = self.scope
        if scope is None or "method" not in scope:  # a head that did not come whole (a large or slow one)
            if self.headers is not None and len(self.headers) > self._max_headers:
                self._refuse(_Refusal(431, f"more than {self._max_headers} request headers"))
            elif self._head_bytes > self._max_head_bytes:
                self._refuse(_Refusal(431, f"request headers exceed the limit of {self._max_head_bytes} bytes"))
            elif self._head_timer is None:
                timeout = self._listener.limits.header_timeout_s
                self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

    # -- httptools callbacks ----------------------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        if len(self.headers) > self._max_headers:
            raise _Refusal(431, f"more than {self._max_headers} request headers")
        if self._head_bytes > self._max_head_bytes and self._head_size() > self._max_head_bytes:
            raise _Refusal(431, f"request headers exceed the limit of {self._max_head_bytes} bytes")
        if self._over_capacity:
            if len(self.connections) > self._listener.capacity:
                raise _Refusal(503, f"the server is at its limit of {self._listener.capacity} connections")
            self._over_capacity = False
        if self._head_timer is not None:
            self._stop_head_timer()
        super().on_headers_complete()

    # -- limits -----------------------------------------------------------------------------------------------
    def evict(self) -> None:
        """Close this idle connection to make room for a new one."""
        self.connections.discard(self)
        self.transport.close()

    def _head_size(self) -> int:
        """The size of the request line and headers just parsed (give or take their separators)."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 16

    def _head_timed_out(self) -> None:
        self._head_timer = None
        scope = self.scope
        if (scope is not None and "method" in scope) or self.transport.is_closing():
            return  # the head came (the timer was not stopped in time), or the connection is closing anyway
        if self.cycle is not None and not self.cycle.response_complete:  # the request before it is still served
            self._head_timer = self.loop.call_later(self._listener.limits.header_timeout_s, self._head_timed_out)
        elif scope is not None:  # part of a request came
            timeout = self._listener.limits.header_timeout_s
            self._refuse(_Refusal(408, f"request headers not received within {timeout} s"))
        else:
            self.transport.close()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, refusal: _Refusal) -> None:
        """Answer `refusal` and close: the connection stops counting against the capacity at once, and reads and
        drops what still comes for `_LINGER_S`."""
        self._refused = True
        self._stop_head_timer()
        self._unset_keepalive_if_required()
        self.connections.discard(self)
        transport = self.transport
        if self.cycle is not None and not self.cycle.response_complete:
            transport.close()  # an answer to an earlier request is under way: nothing may cut into it
            return
        body = orjson.dumps({"error": refusal.message})
        transport.write(
            b"".join(
                [
                    STATUS_LINE[refusal.status],
                    b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(_LINGER_S, transport.close)


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


_DISCONNECTED = "client disconnected before sending the whole body"


def _late(timeout: float) -> InvalidInput:
    return InvalidInput(f"request body not received within {timeout} s")


async def read_body(receive: Receive, limit: int, timeout: float) -> bytes:
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
                raise InvalidInput(_DISCONNECTED)
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
        raise _late(timeout) from None
    finally:
        deadlines.unwatch(task)
    if not chunks:
        return chunk  # the whole body came in one message
    chunks.append(chunk)
    return b"".join(chunks)


async def start_body(receive: Receive, limit: int, timeout: float) -> bytes | BodyStream:
    """An ASGI request's body if it came whole in its first message (as a small body does, with the headers: this
    costs what `read_body` does), else a `BodyStream` holding that first part, to read the rest as it arrives,
    within the same `limit` and what is left of `timeout`."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    deadlines = _BodyDeadlines.of(loop)
    deadlines.watch(task, timeout)
    try:
        message = await receive()
    except asyncio.CancelledError:
        if not deadlines.expired(task):
            raise
        raise _late(timeout) from None
    finally:
        deadline = deadlines.unwatch(task)
    if message["type"] == "http.disconnect":
        raise InvalidInput(_DISCONNECTED)
    chunk = message.get("body", b"")
    if len(chunk) > limit:
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
    if not message.get("more_body"):
        return chunk
    assert deadline is not None
    return BodyStream(receive, chunk, limit, timeout, deadline - loop.time())


class BodyStream:
    """The body of a request that did not come whole with its headers, read as it arrives: iterate it (the parts
    already received first, then each part as it comes), or `read` it whole. At most `limit` bytes in all; the
    client may keep the reader waiting for them `timeout` seconds in all (time the reader spends elsewhere, such as
    waiting for a replica, does not count)."""

    def __init__(self, receive: Receive, first: bytes, limit: int, timeout: float, left_s: float) -> None:
        self._receive = receive
        self._held = [first]  # received, not yet iterated
        self._size = len(first)
        self._limit = limit
        self._timeout = timeout
        self._left_s = left_s  # of `timeout`
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self._held:
            yield self._held.pop(0)
        while not self._done:
            chunk = await self._next()
            if chunk:
                yield chunk

    async def buffer(self, size: int) -> bool:
        """Receive until at least `size` bytes are held or the body has ended; whether it has."""
        held = sum(len(chunk) for chunk in self._held)
        while held < size and not self._done:
            chunk = await self._next()
            self._held.append(chunk)
            held += len(chunk)
        return self._done

    async def read(self) -> bytes:
        """The whole body (what is left of it, if it was iterated)."""
        return b"".join([chunk async for chunk in self])

    async def _next(self) -> bytes:
        loop = asyncio.get_running_loop()
        deadlines = _BodyDeadlines.of(loop)
        task = asyncio.current_task()
        assert task is not None
        began = loop.time()
        deadlines.watch(task, self._left_s)
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if not deadlines.expired(task):
                raise
            raise _late(self._timeout) from None
        finally:
            deadlines.unwatch(task)
            self._left_s -= loop.time() - began
        if message["type"] == "http.disconnect":
            raise InvalidInput(_DISCONNECTED)
        chunk: bytes = message.get("body", b"")
        self._size += len(chunk)
        if self._size > self._limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {self._limit} bytes")
        self._done = not message.get("more_body")
        return chunk


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

    def unwatch(self, task: asyncio.Task[Any]) -> float | None:
        """Stop watching `task`; its deadline (loop time), None if it was not watched."""
        return self._waiting.pop(task, None)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether `task` was cancelled here (once: it is forgotten, and the cancellation withdrawn)."""
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
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
