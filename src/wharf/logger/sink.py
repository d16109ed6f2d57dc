"""`PayloadLogger`: sends payload events to their sinks from a bounded queue, never on a request's path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from wharf.logger.events import PayloadEvent

log = logging.getLogger(__name__)


class PayloadLogger:
    """Posts `PayloadEvent`s to their targets' URLs, in the event loop that submits them.

    `submit` never waits: with `queue_size` events already waiting, the new one is dropped. `senders` tasks post
    the events, each within `timeout_s`; an event whose sink is unreachable, slow or answers with an error status is
    lost. `counts` says how many events were sent, dropped and lost; a warning says so at most every
    `warn_every_s` seconds.
    """

    def __init__(
        self, queue_size: int = 10_000, senders: int = 8, timeout_s: float = 5.0, warn_every_s: float = 10.0
    ) -> None:
        self.counts = {"sent": 0, "dropped": 0, "failed": 0}
        self._queue: asyncio.Queue[PayloadEvent] = asyncio.Queue(queue_size)
        self._senders = senders
        self._timeout_s = timeout_s
        self._warn_every_s = warn_every_s
        self._warned_at = -float("inf")
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None

    def submit(self, event: PayloadEvent) -> None:
        """Queue `event` to be sent (dropped when the queue is full); call it from the logger's event loop."""
        if not self._tasks:
            self._http = httpx.AsyncClient(timeout=self._timeout_s)
            self._tasks = [asyncio.create_task(self._send_all(), name="payload logger") for _ in range(self._senders)]
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            self._warn("payload log queue full; event dropped", event)

    async def close(self, grace_s: float = 5.0) -> None:
        """Send what is queued, for up to `grace_s` seconds, then stop."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace_s)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _send_all(self) -> None:
        assert self._http is not None
        while True:
            event = await self._queue.get()
            try:
                headers, body = event.to_http()
                answer = await self._http.post(event.target.url, headers=headers, content=body)
                if answer.is_success:
                    self.counts["sent"] += 1
                else:
                    self._failed(f"payload log sink answered {answer.status_code}", event)
            except httpx.HTTPError as e:
                self._failed(f"payload log sink unreachable or too slow ({type(e).__name__})", event)
            except Exception:  # a fault of the logger itself: the event is lost, the sender goes on
                self.counts["failed"] += 1
                log.exception("payload event not sent", extra={"sink": event.target.url})
            finally:
                self._queue.task_done()

    def _failed(self, why: str, event: PayloadEvent) -> None:
        self.counts["failed"] += 1
        self._warn(why, event)

    def _warn(self, why: str, event: PayloadEvent) -> None:
        now = time.monotonic()
        if now - self._warned_at >= self._warn_every_s:
            self._warned_at = now
            log.warning(why, extra={"sink": event.target.url, **self.counts})
