"""Which sequences run in the next decode step: a pure, deterministic policy (no clock, no I/O, no torch).

Rules, in the order `admitted` applies them:

1. Sequences wait in one FIFO queue, in the order they were submitted.
2. The head of the queue joins the running batch while the batch holds fewer than `max_sequences` sequences and the
   tokens reserved by the running ones plus its own stay within `max_tokens`. A sequence reserves its prompt plus
   its `max_tokens` new tokens: what its KV cache may grow to, so a running batch never outgrows its bound.
3. The first sequence that does not fit stops admission: no later one overtakes it (fair: a long request is never
   starved by a stream of short ones).
4. A sequence leaves (finished, cancelled, or its consumer gone) from wherever it is; its reservation is freed and
   the next call to `admitted` may let waiting ones in. Admission happens between decode steps only.

A sequence that could never fit (`tokens > max_tokens`) is refused when submitted, not left to block the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Entry:
    """One sequence as the scheduler sees it: its id and the tokens it reserves (prompt + most new tokens)."""

    id: int
    tokens: int


@dataclass(frozen=True, slots=True)
class Schedule:
    """The waiting queue and the running batch; every method returns the next schedule."""

    max_sequences: int
    max_tokens: int
    waiting: tuple[Entry, ...] = ()
    running: tuple[Entry, ...] = ()

    @property
    def reserved(self) -> int:
        """Tokens the running sequences reserve."""
        return sum(e.tokens for e in self.running)

    def fits(self, entry: Entry) -> bool:
        """Whether `entry` could ever run (alone, in an empty batch)."""
        return entry.tokens <= self.max_tokens

    def submitted(self, entry: Entry) -> Schedule:
        """`entry` joins the back of the queue (a ValueError if it could never run)."""
        if not self.fits(entry):
            raise ValueError(f"a sequence of {entry.tokens} tokens exceeds the batch's {self.max_tokens}")
        return replace(self, waiting=(*self.waiting, entry))

    def admitted(self) -> tuple[Schedule, tuple[Entry, ...]]:
        """The schedule after letting the queue's head in while it fits (rules 2-3), and those let in."""
        room, reserved = self.max_sequences - len(self.running), self.reserved
        count = 0
        for entry in self.waiting:
            if count == room or reserved + entry.tokens > self.max_tokens:
                break
            reserved += entry.tokens
            count += 1
        if not count:
            return self, ()
        joining = self.waiting[:count]
        return replace(self, waiting=self.waiting[count:], running=(*self.running, *joining)), joining

    def left(self, id: int) -> Schedule:
        """The schedule without sequence `id`, waiting or running (unchanged if it is in neither)."""
        return replace(
            self,
            waiting=tuple(e for e in self.waiting if e.id != id),
            running=tuple(e for e in self.running if e.id != id),
        )
