"""The protocol-neutral core of the gateway, which the REST and gRPC proxies share.

It holds the current `Router` (swapped whole on `update`), sends one request to a replica of a revision within
the revision's timeout (trying another replica only when the first could not be connected to), counts it in
the revision's statistics, and mirrors a share of requests to a shadow revision without waiting for them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from wharf.errors import RequestTimeout, WharfError
from wharf.gateway.balancer import Balancer
from wharf.gateway.router import Router
from wharf.gateway.routes import Replica, Revision, RouteTable, Service
from wharf.gateway.settings import GatewaySettings
from wharf.gateway.stats import RevisionStats, Stats

log = logging.getLogger(__name__)

T = TypeVar("T")
Send = Callable[[Replica], Awaitable[T]]  # sends the request to one replica and returns its answer
Failed = Callable[[T], bool]  # whether an answer counts as an error of the revision


class ConnectFailed(Exception):
    """No connection to the replica could be opened: it never saw the request, so another may take it."""


class UpstreamFailed(WharfError):
    """The exchange with a replica broke off after the request went out; it is not retried."""

    http_status = 502
    grpc_code = "UNAVAILABLE"


class Dispatcher:
    """Routes, balances, times out, counts and mirrors requests; transports supply the `Send`."""

    def __init__(
        self, settings: GatewaySettings, rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rng = rng or random.Random()
        self.router = Router(RouteTable(), self._rng)
        self.balancer = Balancer(self._rng, settings.max_queued_per_revision, settings.eject_s, clock)
        self.stats = Stats(settings.stats_window_s, settings.stats_bucket_s, clock)
        self._shadow_limit = settings.shadow_concurrency
        self._shadows: set[asyncio.Task[None]] = set()

    def update(self, table: RouteTable) -> None:
        """Route new requests by `table` (ValueError if it is inconsistent); requests in flight are unaffected."""
        self.router = Router(table, self._rng)
        revisions = [r for service in table.services for r in service.revisions.values()]
        self.stats.retain(r.name for r in revisions)
        self.balancer.retain(revisions)

    def snapshot(self) -> dict[str, RevisionStats]:
        """Statistics of every revision in the current table."""
        return self.stats.snapshot(r for s in self.router.table.services for r in s.revisions)

    async def forward(self, revision: Revision, send: Send[T], failed: Failed[T]) -> T:
        """The answer of a replica of `revision`, counted in its statistics; RequestTimeout after its timeout."""
        window = self.stats.window(revision.name)
        clock = self.stats.clock
        start = clock()
        window.in_flight += 1
        error = True
        try:
            async with asyncio.timeout(revision.timeout_s):
                answer = await self._send(revision, send)
            error = failed(answer)
            return answer
        except TimeoutError:
            raise RequestTimeout(f"revision {revision.name!r} did not answer within {revision.timeout_s} s") from None
        finally:
            window.in_flight -= 1
            end = clock()
            window.record(end, end - start, error)

    def mirror(self, router: Router, service: Service, send: Send[T], failed: Failed[T]) -> None:
        """Also send this request to `service`'s shadow revision when it is among the share mirrored, unless
        `shadow_concurrency` mirrored requests are already in flight. Nobody waits for the answer."""
        revision = router.shadow(service)
        if revision is None or len(self._shadows) >= self._shadow_limit:
            return
        task = asyncio.create_task(self._shadow(revision, send, failed))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def close(self) -> None:
        """Cancel the mirrored requests still in flight."""
        for task in self._shadows:
            task.cancel()
        await asyncio.gather(*self._shadows, return_exceptions=True)

    async def _send(self, revision: Revision, send: Send[T]) -> T:
        tried: frozenset[str] = frozenset()
        while True:
            replica = await self.balancer.acquire(revision, tried)
            try:
                return await send(replica)
            except ConnectFailed:
                self.balancer.eject(replica)
                tried |= {replica.id}
            finally:
                self.balancer.release(replica, revision)

    async def _shadow(self, revision: Revision, send: Send[T], failed: Failed[T]) -> None:
        try:
            await self.forward(revision, send, failed)
        except WharfError:
            pass  # counted in the revision's statistics; the answer goes nowhere
        except Exception:
            log.exception("mirroring a request failed", extra={"revision": revision.name})
