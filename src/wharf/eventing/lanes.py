"""A partition's work in record order: its batches, and the offset up to which all of them are done.

Batches of one partition run concurrently (each an infer call), but the partition's committed offset only moves
past a batch once it and every batch before it are done (their answers or dead letters acknowledged by the
broker): `Lane.finished` returns the offset to commit, the next record's, never one past a record still in
flight. A lane lives as long as its partition is assigned to this member; a reassigned partition gets a new one,
which starts from what the group committed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False, slots=True)
class Batch:
    """Consecutive records of a partition, handled as one unit (one infer call, or one per record if they could
    not merge); `first`..`last` their offsets."""

    first: int
    last: int
    size: int
    done: bool = False
    work: Any = None  # what the consumer attaches (its records and task)


@dataclass(eq=False)
class Lane:
    """One assigned partition."""

    topic: str
    partition: int
    batches: deque[Batch] = field(default_factory=deque)
    done_offset: int | None = None  # every record before it is done
    committed: int | None = None

    def add(self, batch: Batch) -> None:
        self.batches.append(batch)

    def finished(self, batch: Batch) -> int:
        """Mark `batch` done; the number of records that no longer wait (those of the batches at the head that
        are now all done)."""
        batch.done = True
        freed = 0
        while self.batches and self.batches[0].done:
            head = self.batches.popleft()
            self.done_offset = head.last + 1
            freed += head.size
        return freed

    def to_commit(self) -> int | None:
        """The offset to commit now, None when there is nothing new."""
        if self.done_offset is None or (self.committed is not None and self.done_offset <= self.committed):
            return None
        return self.done_offset

    def pending(self) -> int:
        return sum(b.size for b in self.batches)
