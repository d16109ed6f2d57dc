"""Answers passed through as they come: a replica's `text/event-stream` answer (server-sent events, such as a
generative model's tokens) goes to the client chunk by chunk instead of being read whole.

The upstream client (upstream.py) decides when an answer's head is parsed, by its Content-Type, for the requests
whose caller allows it (the proxy's; not a graph's steps nor the payload sinks'): the exchange then returns a
`Stream`, its status and headers, whose body the connection keeps feeding as it arrives. `relay` sends it on to
the client: each chunk as soon as it came (what waited meanwhile goes in one piece), with back-pressure (the
connection stops reading from the replica while more than `_HIGH_WATER` bytes wait for a slow client, and reads
again below `_LOW_WATER`), within the revision's deadline. A client that goes away (uvicorn's `http.disconnect`,
watched by one task per stream) closes the connection to the replica at once, so that the replica sees it and
stops generating. A stream that ends early (the replica's connection broke, the deadline passed) ends the
client's connection too, without the chunked terminator: the client sees a truncated answer, never a whole one.
A stream is never sent again to another replica: its head already went to the client.

Whoever counted the request (the balancer's in-flight count, the revision's concurrency, its statistics, the
connection's return to its pool, the payload log) registers with `at_end` what it does when the stream ends, so
that a long stream counts in flight until its last byte (autoscaling on concurrency sees it).

Cost: for every answer to a request that allows streaming, one scan of the head's headers for Content-Type
(about 0.2 us); answers read whole pay nothing else. The dispatcher checks each answer's type where it releases
what it counted (three type checks, tens of nanoseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

EVENT_STREAM = b"text/event-stream"
_HIGH_WATER = 256 * 2**10  # bytes waiting for the client above which the replica's connection stops being read
_LOW_WATER = 64 * 2**10

Headers = list[tuple[bytes, bytes]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class StreamBroken(Exception):
    """The replica's connection broke, or the deadline passed, before the stream's end."""


class Stream:
    """An answer whose head came and whose body is still arriving on its connection.

    The connection feeds it with `append` (it stands in for the connection's list of body chunks) and settles
    `end` when the answer is whole (or fails it when the connection breaks). `deadline` (event loop time) is when
    the stream must have ended, set by the dispatcher.
    """

    __slots__ = (
        "status",
        "headers",
        "deadline",
        "complete",
        "_end",
        "_chunks",
        "_held",
        "_paused",
        "_wake",
        "_transport",
        "_close",
        "_at_end",
        "_kept",
        "_finished",
    )

    def __init__(
        self,
        status: int,
        headers: Headers,
        end: asyncio.Future[None],
        transport: asyncio.Transport,
        close: Callable[[], None],
    ) -> None:
        self.status = status
        self.headers = headers
        self.deadline: float | None = None
        self.complete = False  # the replica's answer ended as it says it does
        self._end = end
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._paused = False
        self._wake: asyncio.Future[None] | None = None
        self._transport = transport
        self._close = close  # closes the connection to the replica
        self._at_end: list[Callable[[], None]] = []
        self._kept: list[bytes] | None = None
        self._finished = False
        end.add_done_callback(self._ended)

    # -- the connection's side ----------------------------------------------------------------------------------
    def append(self, chunk: bytes) -> None:
        """A piece of the body came."""
        self._chunks.append(chunk)
        self._held += len(chunk)
        if self._held > _HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake_up()

    def _ended(self, _: asyncio.Future[None]) -> None:
        self._wake_up()

    def _wake_up(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    # -- the reader's side --------------------------------------------------------------------------------------
    async def next(self) -> bytes | None:
        """What came since the last call (waiting for something), or None once the answer ended; StreamBroken when
        the connection broke first."""
        while not self._chunks:
            if self._finished:  # ended by the gateway (the client went away)
                return None
            end = self._end
            if end.done():
                error = end.exception()
                if error is not None:
                    raise StreamBroken(str(error)) from error
                self.complete = True
                return None
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake
        chunk = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._held = 0
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        if self._kept is not None:
            self._kept.append(chunk)
        return chunk

    def keep(self, whole: Callable[[bytes], None]) -> None:
        """Hand `whole` the body that went to the client (all of it, or what came before the stream broke off) once
        the stream ends."""
        kept = self._kept = []
        self.at_end(lambda: whole(b"".join(kept)))

    def at_end(self, action: Callable[[], None]) -> None:
        """Run `action` once the stream has ended, whatever ended it (actions run in the order given)."""
        self._at_end.append(action)

    async def read(self) -> bytes:
        """The rest of the body, whole, by the deadline (a graph step's answer); StreamBroken if it broke off."""
        chunks = []
        try:
            async with asyncio.timeout_at(self.deadline):
                while (chunk := await self.next()) is not None:
                    chunks.append(chunk)
        except TimeoutError:
            raise StreamBroken("the stream passed its revision's timeout") from None
        finally:
            self.finish()
        return b"".join(chunks)

    async def drain(self) -> None:
        """Read the stream to its end, dropping it (a shadow's copy)."""
        with contextlib.suppress(StreamBroken):
            await self.read()

    def finish(self) -> None:
        """End the stream: close the replica's connection unless the answer ended whole (so that the replica sees
        the client go), then run the `at_end` actions. Idempotent."""
        if self._finished:
            return
        self._finished = True
        end = self._end
        if not end.done():
            end.set_result(None)  # whatever the connection says now goes nowhere
        elif not end.cancelled():
            end.exception()  # retrieved: a broken stream is reported where it ended
        if not self.complete:
            self._close()
        for action in self._at_end:
            try:
                action()
            except Exception:
                log.exception("ending a stream failed")


async def relay(stream: Stream, receive: Receive, send: Send) -> None:
    """Send `stream` to the client as it comes (see the module docstring); it ends here, whatever happens."""
    watcher = asyncio.ensure_future(_gone(receive, stream))
    try:
        await send({"type": "http.response.start", "status": stream.status, "headers": stream.headers})
        async with asyncio.timeout_at(stream.deadline):
            while (chunk := await stream.next()) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except StreamBroken as e:  # returning without the end: the server closes the client's connection
        log.warning("a stream broke off before its end: %s", e)
    except TimeoutError:
        log.warning("a stream passed its revision's timeout before its end")
    finally:
        watcher.cancel()
        stream.finish()


async def _gone(receive: Receive, stream: Stream) -> None:
    """Wait until the client disconnects, then end `stream` (closing its replica's connection)."""
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
    if not stream.complete:
        stream.finish()
