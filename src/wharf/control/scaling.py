"""Autoscaling of revisions: one Autoscaler per revision, fed every resync with the gateway's load figures.

The policy of a revision comes from its service's spec fields and `autoscaling.knative.dev/` annotations; the
load is the revision's requests in flight plus those waiting in the gateway's activator (or its requests/s).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from wharf.autoscaler import Autoscaler, ScalingPolicy
from wharf.control.metrics import ControlMetrics


class RevisionScaling:
    """`grace_s` is the platform-wide scale-to-zero grace period (Knative's config-autoscaler setting)."""

    def __init__(self, grace_s: float, metrics: ControlMetrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self.metrics = metrics
        self.clock = clock
        self._scalers: dict[str, tuple[ScalingPolicy, Autoscaler]] = {}
        self._decided: dict[str, int] = {}
        self._cold_since: dict[str, float] = {}  # revisions asked for while they had no ready replica

    def _scaler(self, revision: str, policy: ScalingPolicy) -> Autoscaler:
        policy = dataclasses.replace(policy, scale_to_zero_grace_period_s=self.grace_s)
        current = self._scalers.get(revision)
        if current is None or current[0] != policy:  # a new policy starts with fresh windows
            current = self._scalers[revision] = (policy, Autoscaler(policy, self.clock()))
        return current[1]

    def replicas(self, revision: str, policy: ScalingPolicy, ready: int) -> int:
        """How many replicas `revision` should have now."""
        decision = self._scaler(revision, policy).desired(self.clock(), ready)
        self._decided[revision] = decision.replicas
        self.metrics.desired.labels(revision).set(decision.replicas)
        self.metrics.ready.labels(revision).set(ready)
        self.metrics.panic.labels(revision).set(int(decision.panicking))
        started = self._cold_since.pop(revision, None) if ready else None
        if started is not None:
            self.metrics.cold_start.labels(revision).observe(self.clock() - started)
        return decision.replicas

    def demanded(self, revision: str, policy: ScalingPolicy) -> None:
        """Requests wait for `revision`, which has no ready replica: count them and time its cold start."""
        self._cold_since.setdefault(revision, self.clock())
        self.observe(revision, policy, concurrency=1.0, rps=1.0)

    def observe(self, revision: str, policy: ScalingPolicy, concurrency: float, rps: float) -> None:
        """One load sample of `revision` (taken once per resync, zeros included)."""
        self._scaler(revision, policy).record(self.clock(), concurrency=concurrency, rps=rps)

    def observe_gateway(self, revision: str, policy: ScalingPolicy, in_flight: int, queued: int, rps: float) -> None:
        """A load sample from the gateway's statistics, also shown as metrics."""
        self.metrics.in_flight.labels(revision).set(in_flight)
        self.metrics.queued.labels(revision).set(queued)
        self.observe(revision, policy, concurrency=float(in_flight + queued), rps=rps)

    def at_zero(self, revision: str) -> bool:
        """Whether the autoscaler last chose no replicas for `revision` (it is scaled to zero, not broken)."""
        return self._decided.get(revision) == 0

    def forget(self, keep: set[str]) -> None:
        """Drop the autoscalers of revisions no service routes to any more."""
        for revision in set(self._scalers) - keep:
            del self._scalers[revision]
            self._decided.pop(revision, None)
            self._cold_since.pop(revision, None)
            self.metrics.forget(revision)
