"""The Knative Pod Autoscaler's algorithm: desired replicas of one revision from its recent load.

Each tick (about a second) the caller records the revision's load, one observation: the requests it has in flight,
those queued at the gateway's activator included (concurrency), or the requests it answered per second since the
last tick (rps). Then it asks for the desired replica count given the ready replicas:

1. Average the observations over the stable window and over the panic window (`panic-window-percentage` of it,
   6 s of Knative's 60 s); divide each by the per-replica target and round up.
2. Move each at most to ceil(max_scale_up_rate x ready) and at least to floor(ready / max_scale_down_rate).
3. Panic when the panic window's figure of step 1 is at least `panic_threshold` times the ready replicas. While
   panicking, follow the larger of the two windows and never go below the most replicas asked for since the panic
   began; panic ends once more than a stable window has passed since the condition last held.
4. Hold the highest recommendation of the last `scale_down_delay_s`.
5. Until the revision has once had `initial_scale` ready replicas, ask for at least that many.
6. Clamp to [min_scale, max_scale] (max_scale 0: no upper bound).
7. Drop the last replica only once the recommendation has stood at zero for the longer of the scale-to-zero grace
   and retention periods. The wait starts no earlier than a stable window after `clock_start`, as Knative keeps a
   revision active for a stable window at least.

Steps 1 to 4 are Knative's `autoscaler.Scale`, 5 to 7 its KPA reconciler's scaler. As in Knative, no ready
replicas count as one in steps 2 and 3, so a burst that arrives at zero replicas panics; any demand seen at zero
asks for at least one replica (a positive average rounds up to one).

An autoscaler may take over a revision that already runs at a `scale` (a restarted control plane keeps the scale
it had chosen, as Knative's deployments keep theirs while its autoscaler restarts): that scale stands in for the
initial scale, so a revision scaled to zero stays there until demand comes; and over more than one replica it
starts in panic with that scale as the peak, as Knative does, so that a stable window of observations is seen
before it scales down. All times are seconds on the caller's monotonic clock; nothing here reads a clock, sleeps
or does I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wharf.autoscaler.policy import ScalingPolicy
from wharf.autoscaler.window import SampleWindow


@dataclass(frozen=True, slots=True)
class Decision:
    """The replicas a revision should have, whether the autoscaler is panicking, and how it got there."""

    replicas: int
    panicking: bool
    reason: str


class _Trail:
    """The recommendation so far, and each rule that changed it (for Decision.reason)."""

    def __init__(self, origin: str, replicas: int) -> None:
        self.replicas = replicas
        self._steps = [f"{origin} -> {replicas}"]

    def apply(self, rule: str, replicas: int) -> None:
        if replicas != self.replicas:
            self.replicas = replicas
            self._steps.append(f"{rule} -> {replicas}")

    def __str__(self) -> str:
        return "; ".join(self._steps)


class Autoscaler:
    """The scaling state of one revision; `clock_start` is when the revision was created, or taken over at `scale`
    replicas (None: a new revision)."""

    def __init__(self, policy: ScalingPolicy, clock_start: float, scale: int | None = None) -> None:
        if scale is not None and scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        self.policy = policy
        self._start = clock_start
        self._stable = SampleWindow(policy.stable_window_s)
        self._panic = SampleWindow(policy.panic_window_s)
        self._recent = SampleWindow(policy.scale_down_delay_s) if policy.scale_down_delay_s > 0 else None
        over_one = scale is not None and scale > 1
        self._last_over_threshold: float | None = clock_start if over_one else None  # None: not panicking
        self._panic_peak = scale if over_one else 0
        self._takeover_scale = scale
        self._reached_initial_scale = False
        self._zero_since: float | None = None

    def update(self, policy: ScalingPolicy) -> None:
        """Follow a changed `policy`, keeping what was observed and decided (as Knative updates a decider); the
        windows take their new spans, and start afresh when the metric changes."""
        if policy.metric != self.policy.metric:
            self._stable, self._panic = SampleWindow(policy.stable_window_s), SampleWindow(policy.panic_window_s)
        else:
            self._stable.resize(policy.stable_window_s)
            self._panic.resize(policy.panic_window_s)
        if policy.scale_down_delay_s <= 0:
            self._recent = None
        elif self._recent is None:
            self._recent = SampleWindow(policy.scale_down_delay_s)
        else:
            self._recent.resize(policy.scale_down_delay_s)
        self.policy = policy

    def record(self, now: float, concurrency: float | None = None, rps: float | None = None) -> None:
        """Take one load sample of the revision at `now`: either metric may be given; the policy's is needed."""
        value = concurrency if self.policy.metric == "concurrency" else rps
        if value is None:
            raise ValueError(f"this revision scales on {self.policy.metric}; record its {self.policy.metric}")
        if value < 0:
            raise ValueError(f"{self.policy.metric} must be >= 0, got {value:g}")
        self._stable.add(now, value)
        self._panic.add(now, value)

    def desired(self, now: float, ready_replicas: int) -> Decision:
        """The replicas the revision should have at `now`, with `ready_replicas` ready to serve."""
        if ready_replicas < 0:
            raise ValueError(f"ready_replicas must be >= 0, got {ready_replicas}")
        policy = self.policy
        stable = self._stable.average(now)
        panic = self._panic.average(now)
        want_stable = math.ceil(stable / policy.target)
        want_panic = math.ceil(panic / policy.target)
        ready = max(ready_replicas, 1)  # no ready replicas count as one
        panicking = self._panicking(now, want_panic / ready)

        trail = _Trail(
            f"{'panic' if panicking else 'stable'}: {policy.metric} {stable:.4g} over {policy.stable_window_s:g}s, "
            f"{panic:.4g} over {policy.panic_window_s:g}s, target {policy.target:g}",
            max(want_stable, want_panic) if panicking else want_stable,
        )
        trail.apply("max-scale-up-rate", min(trail.replicas, math.ceil(policy.max_scale_up_rate * ready)))
        trail.apply("max-scale-down-rate", max(trail.replicas, math.floor(ready / policy.max_scale_down_rate)))
        if panicking:
            trail.apply("no scale-down while panicking", max(trail.replicas, self._panic_peak))
            self._panic_peak = trail.replicas
        if self._recent is not None:
            self._recent.add(now, trail.replicas)
            trail.apply("scale-down-delay", int(self._recent.maximum(now)))
        rule, initial_scale = ("initial-scale", policy.initial_scale)
        if self._takeover_scale is not None:
            rule, initial_scale = ("scale taken over", self._takeover_scale)
        self._reached_initial_scale = self._reached_initial_scale or ready_replicas >= initial_scale
        if not self._reached_initial_scale:
            trail.apply(rule, max(trail.replicas, initial_scale))
        trail.apply("min-scale", max(trail.replicas, policy.min_scale))
        if policy.max_scale:
            trail.apply("max-scale", min(trail.replicas, policy.max_scale))
        trail.apply("scale-to-zero grace", self._keep_last_replica(now, trail.replicas, ready_replicas))
        return Decision(trail.replicas, panicking, str(trail))

    def _panicking(self, now: float, panic_ratio: float) -> bool:
        """Update and return the panic state, given the panic window's recommendation over the ready replicas."""
        if panic_ratio >= self.policy.panic_threshold:
            self._last_over_threshold = now
        elif self._last_over_threshold is not None and now - self._last_over_threshold > self.policy.stable_window_s:
            self._last_over_threshold = None
            self._panic_peak = 0
        return self._last_over_threshold is not None

    def _keep_last_replica(self, now: float, replicas: int, ready_replicas: int) -> int:
        """`replicas`, or 1 where a recommendation of zero has not yet stood long enough to drop the last replica."""
        if replicas > 0:
            self._zero_since = None
            return replicas
        if ready_replicas == 0:
            return 0
        policy = self.policy
        if self._zero_since is None and now - self._start >= policy.stable_window_s:
            self._zero_since = now
        hold_s = max(policy.scale_to_zero_grace_period_s, policy.scale_to_zero_pod_retention_period_s)
        return 0 if self._zero_since is not None and now - self._zero_since >= hold_s else 1
