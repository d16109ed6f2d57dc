"""How many consumer-group members a KafkaSource runs, and how many requests its lag puts on its sink: pure
functions of the figures its consumers report (no clock, sleep or I/O: the time is passed in).

`MemberScale.next` applies these rules, in order:
1. The figure is one member per `lag_threshold` messages of lag (rounded up), within the source's bounds
   (`min-scale`, at least 1: a source keeps one member to read its lag, and `max-scale`).
2. Never more members than the topics have partitions, once that is known: a member beyond them would sit idle.
3. A figure above the members running is taken at once (the lag grows while members wait).
4. A figure below them is taken only once every figure has stayed below for `scale_down_delay_s` (then the highest
   of those figures): a member that leaves makes the group rebalance, which pauses every partition, so a passing
   dip must not cost one.

`calls_waiting` is what the lag asks of the sink's autoscaler: the inference calls the members could have in
flight for it (messages are merged up to `max_batch` per call, and each member keeps at most `max_in_flight`
calls in flight), counted as requests waiting in the gateway are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wharf.control.spec.kafkasource import MemberBounds


@dataclass(frozen=True, slots=True)
class MemberScale:
    """The members chosen, why, and (while lower figures wait out the delay) since when and the highest of them."""

    members: int
    reason: str = "a new source starts with its least members"
    lower_since: float | None = None
    lower_peak: int = 0

    @staticmethod
    def first(bounds: MemberBounds) -> MemberScale:
        return MemberScale(max(bounds.least, 1))

    def next(
        self, bounds: MemberBounds, lag: int, partitions: int | None, now: float, scale_down_delay_s: float
    ) -> MemberScale:
        """The scale once the members report `lag` messages over `partitions` partitions (None: not known yet)."""
        least = max(bounds.least, 1)
        figure = min(max(math.ceil(lag / bounds.lag_threshold), least), max(bounds.most, least))
        why = f"lag {lag} at {bounds.lag_threshold} per member, within {least}..{max(bounds.most, least)}"
        if partitions:
            if figure > partitions:
                why = f"{why}, at most one per partition ({partitions})"
            figure = max(min(figure, partitions), 1)
        if figure >= self.members:
            return MemberScale(figure, why if figure > self.members else self.reason)
        since = self.lower_since if self.lower_since is not None else now
        peak = max(self.lower_peak, figure)
        if now - since < scale_down_delay_s:
            return MemberScale(self.members, self.reason, since, peak)
        return MemberScale(peak, f"{why}, lower for {scale_down_delay_s:g} s")


def calls_waiting(lag: int, members: int, max_batch: int, max_in_flight: int) -> int:
    """The inference calls `lag` messages make, as far as `members` can have them in flight at once."""
    if lag <= 0:
        return 0
    return min(math.ceil(lag / max_batch), max(members, 1) * max_in_flight)
