"""`PayloadLogger`: sends payload events to their sinks from a bounded queue, never on a request's path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from wharf.logger.events import PayloadEvent

log = logging.getLogger(__name__)


Post = Callable[[str, dict[str, str], bytes], Awaitable[int]]  # (url, headers, body) -> the sink's status


class HttpxPost:
    """Posts with an httpx client (any URL, https too); made in the event loop that uses it."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, timeout=None)  # the logger times each send
        return (await self._client.post(url, headers=headers, content=body)).status_code

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class PayloadLogger:
    """Posts `PayloadEvent`s to their targets' URLs with `post` (default: `HttpxPost`), in the event loop that
    submits them.

    `submit` never waits: an event that would make more than `queue_size` events, or more than `queue_bytes` bytes
    of payload, wait is dropped. `senders` tasks post the events; an event not sent within `timeout_s` (all of it),
    or whose sink is unreachable or answers with an error status, is lost. `counts` says how many events were sent,
    dropped and lost (`failed`, events still queued or in flight at `close` included); a warning says so at most
    every `warn_every_s` seconds.
    """

    def __init__(
        self,
        queue_size: int = 10_000,
        queue_bytes: int = 256 * 2**20,
        senders: int = 8,
        timeout_s: float = 5.0,
        warn_every_s: float = 10.0,
        post: Post | None = None,
    ) -> None:
        self.counts = {"sent": 0, "dropped": 0, "failed": 0}
        self._queue: asyncio.Queue[PayloadEvent] = asyncio.Queue(queue_size)
        self._queue_bytes = queue_bytes
        self._bytes = 0  # payload bytes queued or being sent
        self._senders = senders
        self._timeout_s = timeout_s
        self._warn_every_s = warn_every_s
        self._warned_at = -float("inf")
        self._tasks: list[asyncio.Task[None]] = []
        self._httpx = HttpxPost()
        self._post = post or self._httpx
        self._closed = False

    def submit(self, event: PayloadEvent) -> None:
        """Queue `event` to be sent (dropped when the queue is full or the logger closed); call it from the logger's
        event loop."""
        if self._closed or self._bytes + len(event.body) > self._queue_bytes:
            self._drop(event)
            return
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._send_all(), name="payload logger") for _ in range(self._senders)]
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._drop(event)
            return
        self._bytes += len(event.body)

    async def flush(self, timeout_s: float) -> None:
        """Wait until every queued event is sent or lost, for up to `timeout_s` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)

    async def close(self, grace_s: float = 5.0) -> None:
        """Send what is queued, for up to `grace_s` seconds, then stop: what is left counts as failed, and later
        events are dropped."""
        self._closed = True
        if self._tasks:
            await self.flush(grace_s)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        left = self._queue.qsize()
        if left:
            self.counts["failed"] += left
            log.warning("payload events not sent before the logger closed", extra={"events": left})
        await self._httpx.close()

    async def _send_all(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._send(event)
            except asyncio.CancelledError:
                self.counts["failed"] += 1  # cut off by `close`
                raise
            finally:
                self._bytes -= len(event.body)
                self._queue.task_done()

    async def _send(self, event: PayloadEvent) -> None:
        try:
            headers, body = event.to_http()
            async with asyncio.timeout(self._timeout_s):
                status = await self._post(event.target.url, headers, body)
        except TimeoutError:
            self._failed(f"payload log sink took over {self._timeout_s:g} s", event)
        except Exception as e:  # unreachable, or a fault of the logger itself: the event is lost, the sender goes on
            self._failed(f"payload event not sent ({type(e).__name__}: {e})", event)
        else:
            if 200 <= status < 300:
                self.counts["sent"] += 1
            else:
                self._failed(f"payload log sink answered {status}", event)

    def _drop(self, event: PayloadEvent) -> None:
        self.counts["dropped"] += 1
        self._warn("payload log queue full or closed; event dropped", event)

    def _failed(self, why: str, event: PayloadEvent) -> None:
        self.counts["failed"] += 1
        self._warn(why, event)

    def _warn(self, why: str, event: PayloadEvent) -> None:
        now = time.monotonic()
        if now - self._warned_at >= self._warn_every_s:
            self._warned_at = now
            counts = ", ".join(f"{outcome} {count}" for outcome, count in self.counts.items())
            log.warning(f"{why} (events so far: {counts})", extra={"sink": event.target.url})
