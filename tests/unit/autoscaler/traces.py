"""Recorded load traces for the autoscaler's tests, and their replay tick by tick."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wharf.autoscaler import Autoscaler, AutoscalerDefaults, Decision, ScalingPolicy, policy_from_annotations
from wharf.autoscaler.annotations import PREFIX

Trace = list[tuple[float, float]]


def trace(load: Callable[[int], float], seconds: int) -> Trace:
    """One sample a second for `seconds` seconds: (t, load(t))."""
    return [(float(t), float(load(t))) for t in range(seconds)]


def policy(
    *,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    container_concurrency: int = 0,
    defaults: AutoscalerDefaults = AutoscalerDefaults(),
    **annotations: str,
) -> ScalingPolicy:
    """A policy from Knative annotations given as keywords: `panic_threshold_percentage="1000"`.

    The target utilisation is 100% unless given, so that `target` is the per-replica target itself; the tests of
    Knative's utilisation (70% by default) set it, or pass `target_utilization_percentage=""` for the default.
    """
    annotations.setdefault("target_utilization_percentage", "100")
    annotations = {name: value for name, value in annotations.items() if value}
    return policy_from_annotations(
        {PREFIX + name.replace("_", "-"): value for name, value in annotations.items()},
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        container_concurrency=container_concurrency,
        defaults=defaults,
    )


@dataclass(frozen=True)
class Tick:
    time: float
    load: float
    ready: int  # the ready replicas the decision was taken with
    decision: Decision

    @property
    def replicas(self) -> int:
        return self.decision.replicas


def replay(policy: ScalingPolicy, samples: Trace, *, ready: int = 0) -> list[Tick]:
    """Feed `samples` to a new autoscaler started at the first sample; what it decides is ready by the next tick."""
    scaler = Autoscaler(policy, samples[0][0])
    ticks = []
    for now, load in samples:
        scaler.record(now, **{policy.metric: load})
        decision = scaler.desired(now, ready)
        ticks.append(Tick(now, load, ready, decision))
        ready = decision.replicas
    return ticks


def first(ticks: Sequence[Tick], condition: Callable[[Tick], bool]) -> Tick:
    """The first tick meeting `condition`."""
    return next(tick for tick in ticks if condition(tick))


def changes(ticks: Sequence[Tick]) -> list[tuple[float, int]]:
    """(time, replicas) of the first tick and of each tick that changed the replicas."""
    return [(t.time, t.replicas) for i, t in enumerate(ticks) if i == 0 or t.replicas != ticks[i - 1].replicas]
