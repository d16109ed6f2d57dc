"""Autoscaling of revisions: one Autoscaler per revision, fed every resync with the gateway's load figures.

The policy of a revision comes from its service's spec fields and `autoscaling.knative.dev/` annotations. Each
resync gives every routed revision one observation, as Knative's autoscaler takes one a second from its scraper:
its concurrency (requests in flight plus those waiting in the gateway's activator) and its requests per second
since the previous resync (the difference of the gateway's answered-request counts over the gateway's time between
the two snapshots, so a late resync or a snapshot pushed a little early does not skew the rate).

The scale last chosen for a revision is kept in its service's status by the reconciler; a restarted control plane
hands those scales to `restore`, and each revision's new autoscaler takes it over at that scale, so a revision
scaled to zero stays at zero until demand comes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wharf.autoscaler import Autoscaler, ScalingPolicy
from wharf.control.metrics import ControlMetrics
from wharf.gateway.stats import RevisionStats


@dataclass(frozen=True, slots=True)
class _Count:
    """A revision's answered requests as of one gateway snapshot, and the rate since the snapshot before."""

    taken_at: float
    answered: int
    rps: float


class RevisionScaling:
    """`grace_s` is the platform-wide scale-to-zero grace period (Knative's config-autoscaler setting)."""

    def __init__(self, grace_s: float, metrics: ControlMetrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self.metrics = metrics
        self.clock = clock
        self._scalers: dict[str, Autoscaler] = {}
        self._decided: dict[str, int] = {}
        self._restored: dict[str, int] = {}  # scales a previous control plane chose, for revisions not yet seen
        self._counts: dict[str, _Count] = {}
        self._cold_since: dict[str, float] = {}  # revisions asked for while they had no ready replica

    def restore(self, scales: Mapping[str, int]) -> None:
        """Take each revision of `scales` over at that scale when it is first seen (not as a new revision)."""
        self._restored.update(scales)

    def _scaler(self, revision: str, policy: ScalingPolicy) -> Autoscaler:
        policy = dataclasses.replace(policy, scale_to_zero_grace_period_s=self.grace_s)
        scaler = self._scalers.get(revision)
        if scaler is None:
            scaler = self._scalers[revision] = Autoscaler(policy, self.clock(), self._restored.pop(revision, None))
        elif scaler.policy != policy:
            scaler.update(policy)
        return scaler

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

    def observe_gateway(
        self, revision: str, policy: ScalingPolicy, load: RevisionStats | None, waiting: int = 0
    ) -> None:
        """A load sample from the gateway's statistics of `revision` (None: it has none yet), also shown as
        metrics; `waiting` requests that wait elsewhere for it (a Kafka topic's lag) count as queued ones."""
        in_flight, queued = (load.in_flight, load.queued) if load else (0, 0)
        queued += waiting
        self.metrics.in_flight.labels(revision).set(in_flight)
        self.metrics.queued.labels(revision).set(queued)
        self.observe(revision, policy, concurrency=float(in_flight + queued), rps=self._rps(revision, load))

    def _rps(self, revision: str, load: RevisionStats | None) -> float:
        """Requests per second `revision` answered since the gateway's previous snapshot; 0 until there are two."""
        if load is None:
            return 0.0
        previous = self._counts.get(revision)
        if previous is not None and load.taken_at <= previous.taken_at:
            return previous.rps  # the same snapshot again: the gateway has not reported since
        rps = 0.0
        if previous is not None:
            # Fewer than before: the gateway counts the revision afresh (it left the route table and came back).
            since = load.answered - previous.answered if load.answered >= previous.answered else load.answered
            rps = since / (load.taken_at - previous.taken_at)
        self._counts[revision] = _Count(load.taken_at, load.answered, rps)
        return rps

    def at_zero(self, revision: str) -> bool:
        """Whether the autoscaler last chose no replicas for `revision` (it is scaled to zero, not broken)."""
        return self._decided.get(revision) == 0

    def chosen(self, revision: str) -> int | None:
        """The replicas the autoscaler last chose for `revision`; None before its first choice."""
        return self._decided.get(revision)

    def forget(self, keep: set[str]) -> None:
        """Drop the autoscalers of revisions no service routes to any more."""
        for revision in set(self._scalers) - keep:
            del self._scalers[revision]
            self._decided.pop(revision, None)
            self._counts.pop(revision, None)
            self._cold_since.pop(revision, None)
            self.metrics.forget(revision)
        self._restored = {revision: scale for revision, scale in self._restored.items() if revision in keep}
