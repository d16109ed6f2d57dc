"""Watches with Kubernetes' resourceVersion semantics, over the store's recent changes.

`ChangeLog` listens to the store and keeps its last `KEPT` changes in order of their version (each a write's:
`Store.version`), with the version up to which changes were let go (`floor`; at start, the store's version then).
A watch (`ChangeLog.watch`) sends, as Kubernetes' API server does:

- from no resourceVersion (or `0`): every resource it covers now (`ADDED`), then, when asked (`bookmarks`), a
  `BOOKMARK` annotated `k8s.io/initial-events-end`, then every change after the version those were read at;
- from a resourceVersion (a list's, or the last one a watch sent): every change after it, in order; from one older
  than `floor`, an `ERROR` event with a 410 `Expired` Status (the client lists again), as does a watcher that falls
  more than `KEPT` changes behind;
- each change as `ADDED`, `MODIFIED` or `DELETED`; with a selector, a resource that starts or stops matching is
  `ADDED` or `DELETED` then, and the changes of others are skipped;
- with `bookmarks`, a `BOOKMARK` carrying the version it has read up to when nothing was sent for `bookmark_s`;
- until `timeout_s` has passed (None: until the client goes or the log closes, when the control API stops).

A watch holds one `asyncio.Event`, set by each change, and no task: a client that goes ends it, at the first write
its socket refuses, and it lets go of everything (`watchers` counts those open). Each change costs one append here
and a wake of each watcher, which renders the changes it sends (`objects.document`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from wharf.control.kube.selectors import Selector
from wharf.control.kube.status import status
from wharf.control.store import Change, Resource, Store

KEPT = 1000  # changes kept for watches from a resourceVersion (Kubernetes' watch cache keeps about as many)
BOOKMARK_S = 60.0  # as Kubernetes, a bookmark about every minute to a watch that asked for them
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """What a watch sends: a resource's change (`resource`: as it is after it, or as it was before a delete, with
    the delete's version), a bookmark (`version`, `initial_end`), or an error (`error`, a Status)."""

    type: str
    resource: Resource | None = None
    version: int = 0
    initial_end: bool = False
    error: dict[str, Any] | None = None


class Gone(Exception):
    """The changes after a version are no longer kept."""


class ChangeLog:
    def __init__(self, store: Store, kept: int = KEPT, bookmark_s: float = BOOKMARK_S) -> None:
        self.store = store
        self.kept = kept
        self.bookmark_s = bookmark_s
        self.floor = store.version
        self._changes: deque[Change] = deque()
        self._wakes: set[asyncio.Event] = set()
        self._closed = False
        self.unsubscribe = store.subscribe(self._noticed)

    @property
    def watchers(self) -> int:
        """The watches open now."""
        return len(self._wakes)

    def close(self) -> None:
        """End every watch."""
        self._closed = True
        self.unsubscribe()
        for wake in self._wakes:
            wake.set()

    def _noticed(self, change: Change) -> None:
        self._changes.append(change)
        if len(self._changes) > self.kept:
            self.floor = self._changes.popleft().version
        for wake in self._wakes:
            wake.set()

    def after(self, version: int) -> list[Change]:
        """The changes after `version`, oldest first; Gone when some of them were let go."""
        if version < self.floor:
            raise Gone(f"too old resource version: {version} (the oldest kept is {self.floor + 1})")
        found = []
        for change in reversed(self._changes):
            if change.version <= version:
                break
            found.append(change)
        return found[::-1]

    async def watch(
        self,
        kind: str,
        namespace: str | None,
        selector: Selector,
        since: int | None = None,
        timeout_s: float | None = None,
        bookmarks: bool = False,
    ) -> AsyncIterator[WatchEvent]:
        """The events of a watch of `kind` (in `namespace`, None: every one), as the module docstring says."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        wake = asyncio.Event()
        self._wakes.add(wake)
        try:
            if not since:
                since = self.store.version
                for resource in self.store.list(kind, namespace):
                    if _matches(resource, selector):
                        yield WatchEvent("ADDED", resource)
                if bookmarks:
                    yield WatchEvent("BOOKMARK", version=since, initial_end=True)
            position = since
            while not self._closed:
                wake.clear()
                try:
                    changes = self.after(position)
                except Gone as e:
                    yield WatchEvent("ERROR", error=status(410, str(e), "Expired"))
                    return
                for change in changes:
                    position = change.version
                    if change.kind == kind and namespace in (None, change.namespace):
                        event = _event(change, selector)
                        if event is not None:
                            yield event
                if changes:
                    continue
                wait = self.bookmark_s if bookmarks else None
                if deadline is not None:
                    left = deadline - loop.time()
                    wait = left if wait is None else min(wait, left)
                try:
                    async with asyncio.timeout(wait):
                        await wake.wait()
                except TimeoutError:
                    if deadline is not None and loop.time() >= deadline:
                        return
                    yield WatchEvent("BOOKMARK", version=position)
        finally:
            self._wakes.discard(wake)


def _matches(resource: Resource | None, selector: Selector) -> bool:
    if resource is None:
        return False
    labels = (resource.manifest.get("metadata") or {}).get("labels") or {}
    return selector.matches(resource.namespace, resource.name, labels)


def _event(change: Change, selector: Selector) -> WatchEvent | None:
    """A change as its watch sees it through `selector` (the module docstring), or None."""
    was, now = _matches(change.before, selector), _matches(change.after, selector)
    if now:
        return WatchEvent("MODIFIED" if was else "ADDED", change.after)
    if not was:
        return None
    gone = change.after or change.before
    assert gone is not None
    return WatchEvent("DELETED", dataclasses.replace(gone, version=change.version))
