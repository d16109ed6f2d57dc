"""The delays between restarts of one revision's replicas, as Kubernetes' CrashLoopBackOff delays a container's.

Rules, in the order `ended` applies them:
1. A replica that ended after being ready for `reset_after` seconds or more starts the count over: a long-lived
   replica that crashes once is no crash loop.
2. The first end (since the count started over) restarts at once; each later end of any replica of the revision
   waits `initial` seconds, doubling up to `cap` (with Kubernetes' values: 0, 10, 20, 40, ... 300 s).
3. Replicas added to the revision meanwhile (scaled up, or back from zero) wait until the latest restart is due,
   so that scaling cannot get round the delay.
Apart from the delays, `failed_starts` counts the replicas in a row that ended before they were ever ready: a
revision that cannot start at all, whose requests are better failed at once than held.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RestartBackoff:
    """The restart delays of one revision; `clock` (monotonic seconds) says when a restart is due."""

    def __init__(
        self, initial: float, cap: float, reset_after: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.initial, self.cap, self.reset_after, self.clock = initial, cap, reset_after, clock
        self.failed_starts = 0  # ends in a row of replicas that were never ready
        self._next = 0.0  # the delay after the next end
        self._due = float("-inf")  # when the latest restart may go

    def ready(self) -> None:
        """A replica of the revision became ready: it can start."""
        self.failed_starts = 0

    def ended(self, ready_s: float | None) -> float:
        """A replica ended (or failed to start) after being ready for `ready_s` seconds (None: it never was):
        how long to wait before starting it again."""
        if ready_s is None:
            self.failed_starts += 1
        elif ready_s >= self.reset_after:
            self._next = 0.0
        delay = self._next
        self._next = min(max(delay * 2, self.initial), self.cap)
        self._due = max(self._due, self.clock() + delay)
        return delay

    def wait_s(self) -> float:
        """How long a new replica of the revision must wait before it starts (0 unless a restart is due later)."""
        return max(self._due - self.clock(), 0.0)
