"""The delays between restarts of one replica."""

from __future__ import annotations

import time
from collections.abc import Callable


class RestartBackoff:
    """`initial` seconds, doubling with each failure up to `cap`; back to `initial` once the replica has been
    healthy for `reset_after` seconds (measured with `clock`)."""

    def __init__(
        self, initial: float, cap: float, reset_after: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.initial, self.cap, self.reset_after, self.clock = initial, cap, reset_after, clock
        self._failures = 0
        self._healthy_since: float | None = None

    def healthy(self) -> None:
        """The replica passed a health check."""
        if self._healthy_since is None:
            self._healthy_since = self.clock()

    def unhealthy(self) -> None:
        """The replica stopped passing its health checks."""
        self._healthy_since = None

    @property
    def failures(self) -> int:
        """Failures since the replica was last healthy for `reset_after` seconds."""
        return self._failures

    def next_delay(self) -> float:
        """The replica failed (exited or did not start): how long to wait before starting it again."""
        if self._healthy_since is not None and self.clock() - self._healthy_since >= self.reset_after:
            self._failures = 0
        self._healthy_since = None
        delay = min(self.initial * 2**self._failures, self.cap)
        self._failures += 1
        return delay
