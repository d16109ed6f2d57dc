"""The activator: holds requests for a revision that has no ready replica until one appears.

A revision scaled to zero, or whose replicas are still starting, gets its requests queued here (a bounded queue per
revision) instead of answered 503 at once. So does a request whose every ready replica refused it (they crashed,
and the route table does not say so yet): it waits for a ready replica other than those, such as the restarted
one. The first request of a cold start signals the demand (`on_demand`), so that the control plane can start a
replica; the route table that brings a ready replica (`retain`) wakes the waiters it serves, oldest first. A
request that waits past its deadline, or finds the queue full, gets `ActivationFailed`, as does every request for a
revision whose replicas keep failing to start (its `failing`), at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable

from wharf.gateway.balancer import ReplicaUnavailable
from wharf.gateway.routes import Replica, Revision

log = logging.getLogger(__name__)


class ActivationFailed(ReplicaUnavailable):
    """A request could not wait for a revision to get a ready replica; the client may retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Activator:
    """The queues of requests waiting for revisions without a ready replica, by revision name.

    A queue exists exactly while requests wait (a wait episode); `on_demand(revision name)` is called, from the
    event loop, when one starts. A request waits at most `timeout_s`, and never past its own deadline.
    """

    def __init__(self, queue_size: int, timeout_s: float, retry_after_s: int) -> None:
        self.on_demand: Callable[[str], None] | None = None
        self._queue_size = queue_size
        self._timeout_s = timeout_s
        self._retry_after_s = retry_after_s
        # Waiters, oldest first, each with the replicas that refused its request.
        self._queues: dict[str, deque[tuple[asyncio.Future[Revision], frozenset[Replica]]]] = {}
        self._revisions: dict[str, Revision] = {}  # the current table's, by name

    async def wait(self, revision: Revision, deadline: float, refused: frozenset[Replica] = frozenset()) -> Revision:
        """`revision` as the current table has it, once that has a ready replica not in `refused`.

        `deadline` is on the event loop's clock. Raises ActivationFailed when the revision has left the table,
        when its queue is full, or when no replica became ready in time.
        """
        name = revision.name
        current = self._revisions.get(name)
        if current is None:
            raise self._failed(f"revision {name!r} is no longer routed to")
        if _has_ready(current, refused):  # a newer table than the request's already brought one
            return current
        if current.failing:
            raise self._failed(_failing_message(current))
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = deque()
            if not _has_ready(current):  # a cold start; else the table is behind, and the control plane knows
                self._signal(name)
        elif len(queue) >= self._queue_size:
            raise self._failed(f"revision {name!r} has no ready replica and {len(queue)} requests already wait for one")
        loop = asyncio.get_running_loop()
        now = loop.time()
        until = min(deadline, now + self._timeout_s)
        waiter: asyncio.Future[Revision] = loop.create_future()
        entry = (waiter, refused)
        queue.append(entry)
        try:
            async with asyncio.timeout_at(until):
                return await waiter
        except TimeoutError:
            waited = min(revision.timeout_s, self._timeout_s)  # what the deadline allowed, not the clock's remainder
            what = "no ready replica that accepted a connection" if refused else "no ready replica"
            raise self._failed(f"revision {name!r} has {what}: none became ready within {waited:g} s")
        finally:
            if self._queues.get(name) is queue and entry in queue:  # timed out or cancelled, not woken
                queue.remove(entry)
                if not queue:
                    del self._queues[name]

    def retain(self, revisions: Iterable[Revision]) -> None:
        """Take `revisions` as the current ones: wake the waiters that have a ready replica now, oldest first, and
        fail those of revisions no longer in the table or failing."""
        self._revisions = {revision.name: revision for revision in revisions}
        for name, queue in list(self._queues.items()):
            revision = self._revisions.get(name)
            waiting = []
            for waiter, refused in queue:
                if waiter.done():
                    continue
                if revision is None:
                    waiter.set_exception(self._failed(f"revision {name!r} was removed while requests waited for it"))
                elif _has_ready(revision, refused):
                    waiter.set_result(revision)
                elif revision.failing:
                    waiter.set_exception(self._failed(_failing_message(revision)))
                else:
                    waiting.append((waiter, refused))
            queue.clear()
            queue.extend(waiting)  # the same queue: `wait` knows it by identity
            if not queue:
                del self._queues[name]

    def _signal(self, name: str) -> None:
        if self.on_demand is None:
            return
        try:
            self.on_demand(name)
        except Exception:  # the control plane's fault; the request still waits
            log.exception("on_demand failed", extra={"revision": name})

    def _failed(self, message: str) -> ActivationFailed:
        return ActivationFailed(message, self._retry_after_s)


def _failing_message(revision: Revision) -> str:
    return f"revision {revision.name!r} has no ready replica: its replicas keep failing to start: {revision.failing}"


def _has_ready(revision: Revision, refused: frozenset[Replica] = frozenset()) -> bool:
    """Whether `revision` has a ready replica besides those in `refused`."""
    return any(replica.ready and not (refused and replica in refused) for replica in revision.replicas)
