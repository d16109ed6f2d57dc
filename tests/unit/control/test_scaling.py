"""Revision scaling in the control plane: requests per second from the gateway's answered-request counts, and a
restarted control plane taking each revision over at the scale its service's status kept. An injected clock; a
real store and reconciler with a backend that starts nothing (as in test_reconciler_limits)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from wharf.autoscaler import policy_from_annotations
from wharf.control.controller import Controller
from wharf.control.metrics import ControlMetrics
from wharf.control.plan import ISVC_KIND
from wharf.control.scaling import RevisionScaling
from wharf.gateway.stats import RevisionStats

from .fakes import control_plane
from .test_reconciler_limits import Backend

REVISION = "who-predictor-00001"
# rps, a bare target of 10 a replica (utilisation 100%), no panic, a 6 s stable window: desired = ceil(mean / 10).
POLICY = policy_from_annotations(
    {
        "autoscaling.knative.dev/target-utilization-percentage": "100",
        "autoscaling.knative.dev/panic-threshold-percentage": "1000",
        "autoscaling.knative.dev/window": "6s",
    },
    scale_target=10,
    scale_metric="rps",
)


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def snapshot(answered: int, taken_at: float, in_flight: int = 0) -> RevisionStats:
    return RevisionStats(in_flight, answered, 0, 0.0, None, None, answered=answered, taken_at=taken_at)


def test_rps_is_the_answered_requests_between_two_snapshots_over_the_gateways_time_between_them() -> None:
    clock = Clock()
    scaling = RevisionScaling(30.0, ControlMetrics(), clock)
    # 70 requests/s all along; the gateway's snapshots are taken at uneven times (pushed every 0.25 s, read when a
    # resync comes), each holding 70 x its time answered. Every rate after the first is 70 exactly.
    taken = [0.0, 1.2, 2.1, 3.3, 4.0, 5.4, 6.1]
    decisions = []
    for tick, taken_at in enumerate(taken):
        clock.now = float(tick)
        scaling.observe_gateway(REVISION, POLICY, snapshot(round(70 * taken_at), taken_at))
        decisions.append(scaling.replicas(REVISION, POLICY, ready=decisions[-1] if decisions else 0))
    # The first snapshot has nothing before it: 0. Then the 6 s window (t - 6, t] holds 0 and n samples of 70:
    # t=1: 70/2 = 35 -> 4; t=2: 140/3 = 46.67 -> 5; t=3: 210/4 = 52.5 -> 6; t=4: 280/5 = 56 -> 6;
    # t=5: 350/6 = 58.33 -> 6; t=6: the 0 at t=0 has left, 70 -> 7.
    assert decisions == [1, 4, 5, 6, 6, 6, 7]  # (1 at t=0: a new revision's initial scale)


def test_a_snapshot_seen_again_repeats_its_rate_and_a_count_started_afresh_counts_from_zero() -> None:
    clock = Clock()
    scaling = RevisionScaling(30.0, ControlMetrics(), clock)
    ready = 0
    for tick in range(7):  # 70/s for 7 s: the window is all 70s
        clock.now = float(tick)
        scaling.observe_gateway(REVISION, POLICY, snapshot(70 * tick, float(tick)))
        ready = scaling.replicas(REVISION, POLICY, ready)
    assert ready == 7
    clock.now = 7.0  # the gateway has not pushed since: the same snapshot, taken at 6
    scaling.observe_gateway(REVISION, POLICY, snapshot(70 * 6, 6.0))
    assert scaling.replicas(REVISION, POLICY, ready) == 7  # 70 again, not 0
    clock.now = 8.0  # the revision left the gateway's table and came back: 35 answered in the half second since
    scaling.observe_gateway(REVISION, POLICY, snapshot(35, 6.5))
    assert scaling.replicas(REVISION, POLICY, ready) == 7  # 35 / 0.5 = 70, not negative
    clock.now = 9.0  # no figures at all (not in the gateway's table yet): no requests
    scaling.observe_gateway(REVISION, POLICY, None)
    assert scaling.replicas(REVISION, POLICY, ready) == 6  # (70 x 5 + 0) / 6 = 58.33 -> 6


def manifest(name: str, min_replicas: int) -> str:
    return (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata:\n  name: {name}\n  annotations: {{autoscaling.knative.dev/window: 6s}}\n"
        f"spec:\n  predictor:\n    minReplicas: {min_replicas}\n    scaleTarget: 1\n"
        "    model:\n      modelFormat: {name: custom}\n      storageUri: models:WhoAmI\n"
    )


class Gateway:
    """Records the route tables; reports `in_flight` requests on every revision."""

    def __init__(self, in_flight: int = 0) -> None:
        self.in_flight = in_flight
        self.clock = Clock()

    def stats(self) -> dict[str, RevisionStats]:
        return {REVISION: snapshot(0, self.clock(), self.in_flight)}

    def payload_counts(self) -> dict[str, int]:
        return {}

    def update(self, table: Any) -> None:
        pass


def controller(home: Path, backend: Backend, gateway: Gateway, clock: Clock) -> Controller:
    """A control plane over the store in `home`; a second one over the same home is a restart."""
    control = control_plane(home, backend, gateway, grace_s=1.0)
    control.reconciler.scaling.clock = clock
    return control


def scale(control: Controller) -> dict[str, int]:
    resource = control.store.get(ISVC_KIND, "default", "who")
    assert resource is not None
    return resource.status["routing"]["components"]["predictor"]["scale"]


def test_a_restart_keeps_a_revision_scaled_to_zero_at_zero_until_demand(tmp_path: Path) -> None:
    clock = Clock()
    backend = Backend()
    first = controller(tmp_path, backend, Gateway(), clock)

    async def scale_to_zero() -> None:
        await first.apply(manifest("who", 0))
        assert len(backend.replicas(REVISION)) == 1  # a new revision's initial scale
        while backend.replicas(REVISION):  # no requests: gone after the 6 s window and the 1 s grace period
            assert clock.now < 30
            clock.now += 1
            await first.reconciler.resync()

    asyncio.run(scale_to_zero())
    assert clock.now == 6 + 1 and scale(first) == {REVISION: 0}
    first.store.close()

    clock.now += 100
    restarted_backend = Backend()  # `wharf up` stopped its replicas with it
    again = controller(tmp_path, restarted_backend, Gateway(), clock)

    async def restart() -> None:
        await again.reconciler.reconcile()
        for _ in range(10):
            clock.now += 1
            await again.reconciler.resync()
            assert restarted_backend.replicas(REVISION) == []  # (was: one replica, the initial scale, at once)
        await again.reconciler.demand(REVISION)  # a request waits at the gateway
        assert len(restarted_backend.replicas(REVISION)) == 1

    asyncio.run(restart())
    conditions = {c["type"]: c["status"] for c in again.store.get(ISVC_KIND, "default", "who").status["conditions"]}
    assert conditions["Ready"] == "True"
    again.store.close()


def test_a_restart_brings_back_the_replicas_a_revision_had_and_keeps_them_a_stable_window(tmp_path: Path) -> None:
    clock = Clock()
    backend = Backend()
    busy = Gateway(in_flight=3)  # 3 requests in flight against a target of 1 x 70%: ceil(3 / 0.7) = 5
    first = controller(tmp_path, backend, busy, clock)

    async def load() -> None:
        await first.apply(manifest("who", 0))
        for _ in range(10):
            clock.now += 1
            busy.clock.now = clock.now
            await first.reconciler.resync()

    asyncio.run(load())
    assert len(backend.replicas(REVISION)) == 5 and scale(first) == {REVISION: 5}
    first.store.close()

    restarted_backend = Backend()
    idle = Gateway()
    again = controller(tmp_path, restarted_backend, idle, clock)

    async def restart() -> list[int]:
        await again.reconciler.reconcile()
        counts = [len(restarted_backend.replicas(REVISION))]
        for _ in range(10):
            clock.now += 1
            idle.clock.now = clock.now
            await again.reconciler.resync()
            counts.append(len(restarted_backend.replicas(REVISION)))
        return counts

    # Taken over at 5 with no observations yet: Knative starts in panic and keeps 5 until more than a stable
    # window (6 s) has passed; then the rate halves it (floor(5 / 2) = 2, then 1), and the last replica goes once
    # the recommendation of 0 (from +9) has stood for the 1 s grace period.
    assert asyncio.run(restart()) == [5, 5, 5, 5, 5, 5, 5, 2, 1, 1, 0]
    again.store.close()
