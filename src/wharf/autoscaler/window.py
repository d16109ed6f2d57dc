"""A sliding time window of samples, for the load averages and the scale-down delay.

The window ending at `now` holds the samples taken in `(now - span_s, now]`. Samples are expected one per tick, so
the average is taken over the samples present: a window that is not yet full (a revision that has just started)
is not diluted by the time before its first sample, and a window whose samples have all aged out averages 0.
"""

from __future__ import annotations

import math
from collections import deque


class SampleWindow:
    """Timed samples of the last `span_s` seconds."""

    __slots__ = ("span_s", "_samples")

    def __init__(self, span_s: float) -> None:
        if span_s <= 0:
            raise ValueError(f"a window must span more than 0 s, got {span_s:g}")
        self.span_s = span_s
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> None:
        """Take a sample at `now`; time must not go backwards."""
        if self._samples and now < self._samples[-1][0]:
            raise ValueError(f"sample time {now:g} is before the last one ({self._samples[-1][0]:g})")
        self._samples.append((now, value))
        self._forget(now)

    def average(self, now: float) -> float:
        """The mean of the samples in the window ending at `now`; 0.0 without any.

        Summed exactly (math.fsum), so a window of zeros averages exactly 0 and never asks for a replica.
        """
        self._forget(now)
        if not self._samples:
            return 0.0
        return math.fsum(value for _, value in self._samples) / len(self._samples)

    def maximum(self, now: float) -> float:
        """The largest sample in the window ending at `now`; 0.0 without any."""
        self._forget(now)
        return max((value for _, value in self._samples), default=0.0)

    def _forget(self, now: float) -> None:
        samples = self._samples
        while samples and samples[0][0] <= now - self.span_s:
            samples.popleft()
