"""`InspectionQueue`: logged inferences waiting for a detector, bounded by their rows, between the ingest (which
must never wait) and the task that scores them in batches.

`offer` costs a deque append and an event set, and refuses (the caller counts the drop) rather than wait when the
rows queued would pass the limit. `take` waits for items, then lingers `linger_s` for more unless a batch is already
there: an estimator call costs milliseconds whatever its rows (an isolation forest about 9 ms), so at a trickle of
traffic rows are scored at most every `linger_s`, and under load in batches of `max_rows`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class InspectionQueue(Generic[T]):
    """Items of some rows each, at most `limit_rows` rows in all; one task takes them (in the event loop)."""

    def __init__(self, limit_rows: int, linger_s: float = 0.1) -> None:
        self.limit_rows = limit_rows
        self.linger_s = linger_s
        self.rows = 0  # rows queued
        self._items: deque[tuple[T, int]] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: T, rows: int) -> bool:
        """Queue `item` of `rows` rows; False (not queued) when the rows would pass the limit."""
        if self.rows + rows > self.limit_rows:
            return False
        self._items.append((item, rows))
        self.rows += rows
        self._ready.set()
        return True

    async def take(self, max_rows: int) -> list[T]:
        """The oldest items, `max_rows` rows at most (at least one item), once there are some."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        if self.rows < max_rows and self.linger_s > 0:
            await asyncio.sleep(self.linger_s)
        taken: list[T] = []
        rows = 0
        while self._items and (not taken or rows + self._items[0][1] <= max_rows):
            item, count = self._items.popleft()
            taken.append(item)
            rows += count
        self.rows -= rows
        return taken
