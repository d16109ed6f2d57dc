"""A sliding time window of samples, for the load averages and the scale-down delay.

The window ending at `now` holds the samples taken in `(now - span_s, now]`. Knative keeps one bucket a second and
averages the buckets since the first write; the caller here samples once a tick (about a second), so the average
is taken over the samples present: with one sample a second it is Knative's average, a window that is not yet full
(a revision that has just started) is not diluted by the time before its first sample, and a tick that comes late
leaves no empty second behind to count as zero. A window whose samples have all aged out averages 0.
"""

from __future__ import annotations

import math
from collections import deque

_DIGITS = 6  # Knative rounds window averages to 6 decimal places, so float noise never asks for another replica


class SampleWindow:
    """Timed samples of the last `span_s` seconds."""

    __slots__ = ("span_s", "_samples")

    def __init__(self, span_s: float) -> None:
        self.span_s = _checked(span_s)
        self._samples: deque[tuple[float, float]] = deque()

    def resize(self, span_s: float) -> None:
        """Span `span_s` seconds from now on; samples already forgotten stay forgotten."""
        self.span_s = _checked(span_s)

    def add(self, now: float, value: float) -> None:
        """Take a sample at `now`; time must not go backwards."""
        if self._samples and now < self._samples[-1][0]:
            raise ValueError(f"sample time {now:g} is before the last one ({self._samples[-1][0]:g})")
        self._samples.append((now, value))
        self._forget(now)

    def average(self, now: float) -> float:
        """The mean of the samples in the window ending at `now`, rounded to 6 decimal places; 0.0 without any.

        Summed exactly (math.fsum), so a window of zeros averages exactly 0 and never asks for a replica.
        """
        self._forget(now)
        if not self._samples:
            return 0.0
        return round(math.fsum(value for _, value in self._samples) / len(self._samples), _DIGITS)

    def maximum(self, now: float) -> float:
        """The largest sample in the window ending at `now`; 0.0 without any."""
        self._forget(now)
        return max((value for _, value in self._samples), default=0.0)

    def _forget(self, now: float) -> None:
        samples = self._samples
        while samples and samples[0][0] <= now - self.span_s:
            samples.popleft()


def _checked(span_s: float) -> float:
    if span_s <= 0:
        raise ValueError(f"a window must span more than 0 s, got {span_s:g}")
    return span_s
