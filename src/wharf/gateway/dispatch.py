"""The protocol-neutral core of the gateway, which the REST and gRPC proxies share.

It holds the current `Router` (swapped whole on `update`), sends one request to a replica of a revision within
the revision's timeout, counts it in the revision's statistics (by the `Codes` of the transport: codes.py), and
mirrors a share of requests to a shadow revision without waiting for them (counted apart, as the shadow's).

A replica that dies costs no request that can be saved. A request goes to another replica when one refused its
connection, and once more (to another replica where there is one, else over a new connection) when a connection
broke before the whole answer came, as Knative's activator does: the replica died or closed the connection, and
inference requests may be sent again (answers are read whole, so none of a broken one reached the client; a replica
killed between writing its answer's head and its body is as likely as one killed before either). A replica that
drops it again on a new connection is dying, and counts as refusing it. With no ready replica left to try, the
request waits in the activator as when the revision scales from zero: the crashed replica is restarted, and the
route table that says so wakes it. Each try sent again is counted
(the revision's window's `refused` and `resent`). The happy path pays for none of this but a few attribute reads.

An answer passed on as it comes (a `Stream`: streaming.py) is counted until its end: the replica stays acquired,
the request in flight and unrecorded until the stream's `at_end`; its head must come within the revision's timeout,
and its body by the same deadline. It is never sent again once its head came (the client may have some of it).

While tracing is on (`wharf.telemetry.tracing`), a wait in the activator is a span `activator wait` (attributes
`wharf.revision`, `wharf.cold_start`: whether the revision had no ready replica at all), each try sent again an event
on the request's span (`refused` or `resent`, with `wharf.replica`), and a mirrored copy a CLIENT span `shadow`
(`wharf.revision`) under the request's, which the copy's replica continues. Off, none of it costs more than the
check of `tracing.enabled` on those paths (none on the happy path).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from wharf.errors import RequestTimeout, WharfError
from wharf.gateway.activator import Activator
from wharf.gateway.balancer import Balancer, NoReadyReplica
from wharf.gateway.codes import Code, Codes
from wharf.gateway.edges import Edges
from wharf.gateway.router import Router
from wharf.gateway.routes import Replica, Revision, RouteTable, Service
from wharf.gateway.settings import GatewaySettings
from wharf.gateway.stats import RevisionStats, RevisionWindow, Stats
from wharf.gateway.streaming import Stream
from wharf.telemetry import tracing

log = logging.getLogger(__name__)

T = TypeVar("T")
Send = Callable[[Replica], Awaitable[T]]  # sends the request to one replica and returns its answer


def _leave(window: RevisionWindow) -> None:
    window.in_flight -= 1


class ConnectFailed(Exception):
    """No connection to the replica could be opened: it never saw the request, so another may take it."""


class UpstreamFailed(WharfError):
    """The exchange with a replica broke off after the request went out (see NoAnswer for the exception)."""

    http_status = 502
    grpc_code = "UNAVAILABLE"


class NoAnswer(UpstreamFailed):
    """The connection to a replica broke before the whole answer came: the request is sent once more."""


@dataclass(frozen=True, slots=True)
class _Tries:
    """What became of a request's earlier tries: the replicas that refused its connection (not tried again while
    they stay as they are; a restarted replica has another address) and the one that dropped it unanswered."""

    refused: frozenset[Replica] = frozenset()
    dropped: Replica | None = None


_FIRST_TRY = _Tries()


class _Held(Exception):
    """No ready replica of the revision is left to try: the request waits for one in the activator."""

    def __init__(self, tries: _Tries) -> None:
        self.tries = tries


class Dispatcher:
    """Routes, balances, times out, counts and mirrors requests; transports supply the `Send`."""

    def __init__(
        self, settings: GatewaySettings, rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rng = rng or random.Random()
        self.router = Router(RouteTable(), self._rng)
        self.balancer = Balancer(self._rng, settings.max_queued_per_revision, settings.eject_s, clock)
        self.stats = Stats(settings.stats_window_s, settings.stats_bucket_s, clock)
        self.edges = Edges(self.stats, settings.stats_window_s, settings.stats_bucket_s)
        self.activator = Activator(
            settings.activator_queue_size, settings.activator_timeout_s, settings.activator_retry_after_s
        )
        self._shadow_limit = settings.shadow_concurrency
        self._shadows: set[asyncio.Task[None]] = set()

    @property
    def rng(self) -> random.Random:
        """The random source of every draw (traffic splits, ties, shadow shares, graph splitters)."""
        return self._rng

    def update(self, table: RouteTable) -> None:
        """Route new requests by `table` (ValueError if it is inconsistent); requests in flight are unaffected."""
        self.router = Router(table, self._rng)
        revisions = [r for service in table.services for r in service.revisions.values()]
        self.stats.retain(r.name for r in revisions)
        self.edges.update(table)
        self.balancer.retain(revisions)
        self.activator.retain(revisions)

    def snapshot(self) -> dict[str, RevisionStats]:
        """Statistics of every revision in the current table."""
        return self.stats.snapshot(r for s in self.router.table.services for r in s.revisions)

    async def forward(
        self, revision: Revision, send: Send[T], codes: Codes[T], mirrored: bool = False, source: str | None = None
    ) -> T:
        """The answer of a replica of `revision`, counted in its statistics under its code (`mirrored`: as a copy
        sent to it as a shadow), and on the edge from `source` when the request says who sent it (edges.py).

        While the revision has no ready replica left to try the request waits in the activator (ActivationFailed
        past its deadline); RequestTimeout once the revision's timeout has passed since the request came.
        """
        window = self.stats.window(revision.name)
        clock = self.stats.clock
        start = clock()
        deadline = asyncio.get_running_loop().time() + revision.timeout_s
        tries = _FIRST_TRY
        answer = None
        try:
            while True:
                try:
                    answer = await self._send_within(revision, send, window, deadline, tries)
                    break
                except _Held as held:
                    tries = held.tries
                    window.queued += 1
                    try:
                        cold = not any(replica.ready for replica in revision.replicas)
                        attributes = {"wharf.revision": revision.name, "wharf.cold_start": cold}
                        with tracing.span("activator wait", attributes):
                            revision = await self.activator.wait(revision, deadline, tries.refused)
                    finally:
                        window.queued -= 1
            code = codes.of(answer)
            return answer
        except BaseException as e:
            code = codes.of_exception(e)
            raise
        finally:
            if answer.__class__ is Stream:  # recorded once it ends
                answer.at_end(lambda: self._record(window, revision.name, start, code, mirrored, source))  # type: ignore[union-attr]
            else:
                self._record(window, revision.name, start, code, mirrored, source)

    def _record(
        self, window: RevisionWindow, revision: str, start: float, code: Code, mirrored: bool, source: str | None
    ) -> None:
        """Count a request to `revision` that began at `start` and ends now."""
        end = self.stats.clock()
        window.record(end, end - start, code, mirrored)
        if source is not None:
            self.edges.record(source, revision, end, end - start, code)

    def mirror(
        self, router: Router, service: Service, send: Send[T], codes: Codes[T], source: str | None = None
    ) -> None:
        """Also send this request to `service`'s shadow revision when it is among the share mirrored, unless
        `shadow_concurrency` mirrored requests are already in flight. Nobody waits for the answer."""
        revision = router.shadow(service)
        if revision is None or len(self._shadows) >= self._shadow_limit:
            return
        task = asyncio.create_task(self._shadow(revision, send, codes, source))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def close(self) -> None:
        """Cancel the mirrored requests still in flight."""
        for task in self._shadows:
            task.cancel()
        await asyncio.gather(*self._shadows, return_exceptions=True)

    async def _send_within(
        self, revision: Revision, send: Send[T], window: RevisionWindow, deadline: float, tries: _Tries
    ) -> T:
        """`send` to a replica of `revision`, counted in flight; RequestTimeout at `deadline` (loop time)."""
        window.in_flight += 1
        answer = None
        try:
            async with asyncio.timeout_at(deadline):
                answer = await self._send(revision, send, window, tries)
            if answer.__class__ is Stream:
                answer.deadline = deadline  # type: ignore[attr-defined]
            return answer
        except TimeoutError:
            raise RequestTimeout(f"revision {revision.name!r} did not answer within {revision.timeout_s} s") from None
        finally:
            if answer.__class__ is Stream:  # in flight until it ends
                answer.at_end(lambda: _leave(window))  # type: ignore[attr-defined]
            else:
                window.in_flight -= 1

    async def _send(self, revision: Revision, send: Send[T], window: RevisionWindow, tries: _Tries) -> T:
        """`send` to a replica of `revision` not refused before, counting each try sent again in `window`; _Held
        when none is left to try."""
        refused, dropped = tries.refused, tries.dropped
        tried = frozenset(r.id for r in revision.replicas if r in refused) if refused else frozenset()
        avoid: frozenset[str] = frozenset()
        while True:
            try:
                replica = await self.balancer.acquire(revision, tried, avoid)
            except NoReadyReplica:
                raise _Held(_Tries(refused, dropped)) from None
            answer = None
            try:
                answer = await send(replica)
                return answer
            except ConnectFailed:
                self.balancer.eject(replica)
                refused |= {replica}
                tried |= {replica.id}
                window.refused += 1
                if tracing.enabled:
                    tracing.event("refused", {"wharf.replica": replica.id})
            except NoAnswer:
                if dropped is None:  # once more: to another replica if there is one, else over a new connection
                    dropped, avoid = replica, frozenset({replica.id})
                elif dropped == replica:  # a new connection dropped too: it is going away, as if it had refused
                    refused |= {replica}
                    tried |= {replica.id}
                else:
                    raise
                window.resent += 1
                if tracing.enabled:
                    tracing.event("resent", {"wharf.replica": replica.id})
            finally:
                if answer.__class__ is Stream:  # acquired until it ends
                    answer.at_end(lambda: self.balancer.release(replica, revision))  # type: ignore[attr-defined]
                else:
                    self.balancer.release(replica, revision)

    async def _shadow(self, revision: Revision, send: Send[T], codes: Codes[T], source: str | None) -> None:
        try:
            with tracing.span("shadow", {"wharf.revision": revision.name}, client=True):
                answer = await self.forward(revision, send, codes, mirrored=True, source=source)
                if isinstance(answer, Stream):
                    await answer.drain()
        except WharfError:
            pass  # counted in the revision's statistics; the answer goes nowhere
        except Exception:
            log.exception("mirroring a request failed", extra={"revision": revision.name})
