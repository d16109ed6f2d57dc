"""Replica choice at run time: in-flight counts, container-concurrency queues and passive ejection.

`Balancer.acquire` is the one place that finds no replica to send to (`NoReadyReplica`: none is ready, or every
ready one refused this request); the dispatcher then hands the request to the activator.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Iterable

from wharf.errors import ServerBusy, WharfError
from wharf.gateway.router import least_loaded
from wharf.gateway.routes import Replica, Revision


class ReplicaUnavailable(WharfError):
    """A revision has no ready replica to send a request to."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class NoReadyReplica(ReplicaUnavailable):
    """A revision has no ready replica to try: it is scaled to zero, its replicas are still starting, or those the
    route table has as ready refused the request (they ended, and the table does not say so yet)."""


class Balancer:
    """Counts requests in flight per replica and hands each request the least loaded ready replica.

    With `container_concurrency` > 0, a replica takes at most that many requests at once; the excess waits in a
    bounded queue per revision (`max_queued` waiters; beyond that `ServerBusy`). A replica that refused a
    connection is avoided for `eject_s` seconds unless no other is left. Acquiring costs a scan of the revision's
    replicas; the ejection bookkeeping only runs while some replica is ejected.
    """

    def __init__(self, rng: random.Random, max_queued: int, eject_s: float, clock: Callable[[], float]) -> None:
        self.in_flight: dict[str, int] = {}
        self._rng = rng
        self._max_queued = max_queued
        self._eject_s = eject_s
        self._clock = clock
        self._ejected: dict[str, float] = {}  # replica id -> until
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}  # revision name -> waiters, oldest first
        self._revisions: dict[str, Revision] = {}  # the current table's, by name

    async def acquire(
        self, revision: Revision, tried: frozenset[str] = frozenset(), avoid: frozenset[str] = frozenset()
    ) -> Replica:
        """A replica of `revision` not in `tried` (and, while there are others, not in `avoid`), counted in flight
        until `release`; waits while all are full."""
        while True:
            replica = self._choose(revision, tried, avoid)
            cap = revision.container_concurrency
            if not cap or self.in_flight.get(replica.id, 0) < cap:
                self.in_flight[replica.id] = self.in_flight.get(replica.id, 0) + 1
                return replica
            await self._wait(revision.name)
            revision = self._revisions.get(revision.name, revision)  # the table may have changed meanwhile

    def release(self, replica: Replica, revision: Revision) -> None:
        """`replica` finished a request; the oldest request waiting for `revision` may go."""
        self.in_flight[replica.id] -= 1
        if revision.container_concurrency:
            self._wake(revision.name)

    def eject(self, replica: Replica) -> None:
        """Avoid `replica` for a while: it refused a connection."""
        self._ejected[replica.id] = self._clock() + self._eject_s

    def retain(self, revisions: Iterable[Revision]) -> None:
        """Take `revisions` as the current ones: forget idle replicas of others, and let every waiter look again."""
        self._revisions = {revision.name: revision for revision in revisions}
        keep = {replica.id for revision in self._revisions.values() for replica in revision.replicas}
        self.in_flight = {k: n for k, n in self.in_flight.items() if n or k in keep}
        self._ejected = {k: t for k, t in self._ejected.items() if k in keep}
        for name in list(self._waiting):
            self._wake(name, everyone=True)

    def _choose(self, revision: Revision, tried: frozenset[str], avoid: frozenset[str]) -> Replica:
        replica = None
        if self._ejected or avoid:
            now = self._clock()
            self._ejected = {k: until for k, until in self._ejected.items() if until > now}
            skip = tried | avoid | self._ejected.keys()
            replica = least_loaded(revision.replicas, self.in_flight, self._rng, skip)
        if replica is None:
            replica = least_loaded(revision.replicas, self.in_flight, self._rng, tried)
        if replica is None and tried:
            raise NoReadyReplica(f"revision {revision.name!r} has no ready replica that accepted a connection")
        if replica is None:
            raise NoReadyReplica(f"revision {revision.name!r} has no ready replica")
        return replica

    async def _wait(self, name: str) -> None:
        queue = self._waiting.setdefault(name, deque())
        if len(queue) >= self._max_queued:
            raise ServerBusy(f"revision {name!r} is at its concurrency limit with {len(queue)} requests waiting")
        waiter = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake(name)  # woken, then cancelled: pass the turn on
            raise
        finally:
            if waiter in queue:
                queue.remove(waiter)
            if not queue and self._waiting.get(name) is queue:
                del self._waiting[name]

    def _wake(self, name: str, everyone: bool = False) -> None:
        queue = self._waiting.get(name)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    return
