"""The KPA on recorded requests-per-second traces, against Knative's formulas worked out by hand.

One observation a second, as Knative's scraper takes them: the requests the revision answered in that second. The
policy is the issue's: `scaleMetric: rps`, `scaleTarget: 20`, `minReplicas: 1`, Knative's defaults otherwise (target
utilisation 70%, stable window 60 s, panic window 10% of it = 6 s, panic threshold 200%, max scale down rate 2).
So the per-replica target is 20 x 0.7 = 14 requests/s, and, with W the observations in a window,

    desired(window) = ceil(mean(W) / 14)        panic when desired(panic window) / max(ready, 1) >= 2
"""

from __future__ import annotations

import pytest

from wharf.autoscaler import Autoscaler, policy_from_annotations

from .traces import changes, replay, trace

RPS_20 = policy_from_annotations({}, min_replicas=1, scale_target=20, scale_metric="rps")
LOAD_AT, LOAD_UNTIL = 60, 180  # a minute without requests (full windows of zeros), then 70/s for two minutes


def seventy_a_second(seconds: int = 300) -> list[tuple[float, float]]:
    return trace(lambda t: 70 if LOAD_AT <= t < LOAD_UNTIL else 0, seconds)


def test_the_target_is_scale_target_times_knatives_utilisation() -> None:
    assert RPS_20.target == 14.0
    assert (RPS_20.stable_window_s, RPS_20.panic_window_s, RPS_20.panic_threshold) == (60.0, 6.0, 2.0)


def test_seventy_a_second_panics_to_four_replicas_within_the_panic_window_and_settles_at_five() -> None:
    ticks = {tick.time: tick for tick in replay(RPS_20, seventy_a_second(), ready=1)}
    # t   panic window (6 s)     desired(panic)      ready  panic?           stable window (60 s)   desired
    # 60  70/6     = 11.666667   ceil(0.83)  = 1     1      1/1 < 2: no      70/60  = 1.166667 -> 1  1
    # 61  140/6    = 23.333333   ceil(1.67)  = 2     1      2/1 >= 2: yes    140/60 = 2.333333 -> 1  max(1, 2) = 2
    # 62  210/6    = 35          ceil(2.5)   = 3     2      (since 61)       210/60 = 3.5      -> 1  3
    # 63  280/6    = 46.666667   ceil(3.33)  = 4     3                       280/60            -> 1  4
    # 64  350/6    = 58.333333   ceil(4.17)  = 5     4                       350/60            -> 1  5
    # 65  420/6    = 70          ceil(5)     = 5     5                       420/60 = 7        -> 1  5 (the peak)
    expected = {60: (1, False), 61: (2, True), 62: (3, True), 63: (4, True), 64: (5, True), 65: (5, True)}
    assert {t: (ticks[t].replicas, ticks[t].decision.panicking) for t in expected} == expected
    # (Before: requests in the last 60 s / 60 with the bare target 20: at 63, 280/60 = 4.67 -> 1 replica.)
    # Over the threshold last at 61: panic holds until more than a stable window has passed (61 + 60 < t), and by
    # then the stable window holds 70/s only: ceil(70 / 14) = 5.
    assert ticks[121].decision.panicking and not ticks[122].decision.panicking
    assert ticks[122].replicas == 5 and "stable: rps 70 over 60s, 70 over 6s, target 14" in ticks[122].decision.reason


def test_the_stable_window_scales_down_as_the_load_leaves_it() -> None:
    ticks = replay(RPS_20, seventy_a_second(), ready=1)
    # From 180 no requests: at 180 + k the stable window holds 59 - k seconds of 70 (k < 59), so
    # desired = ceil((59 - k) x 70 / 60 / 14) = ceil((59 - k) / 12): 5 while 59 - k > 48, 4 from k = 11 (191),
    # 3 from k = 23 (203), 2 from 215, 1 from 227; at 239 the window is all zeros, and minReplicas keeps 1. Each
    # step is within max-scale-down-rate 2 (floor(ready / 2) <= the step).
    assert [c for c in changes(ticks) if c[0] >= LOAD_UNTIL] == [(191.0, 4), (203.0, 3), (215.0, 2), (227.0, 1)]


def test_knatives_default_rps_target_is_200_times_70_percent() -> None:
    policy = policy_from_annotations({}, min_replicas=1, scale_metric="rps")
    ticks = replay(policy, trace(lambda t: 900 if t >= 60 else 0, 240), ready=1)
    # 900/s against 200 x 0.7 = 140 per replica: ceil(900 / 140) = ceil(6.43) = 7 (the bare 200 would give 5).
    assert ticks[-1].replicas == 7 and not ticks[-1].decision.panicking


@pytest.mark.parametrize(("utilization", "replicas"), [("100", 4), ("50", 7), ("70", 5)])
def test_the_utilisation_annotation_sets_the_share_of_the_target_aimed_for(utilization: str, replicas: int) -> None:
    annotations = {"autoscaling.knative.dev/target-utilization-percentage": utilization}
    policy = policy_from_annotations(annotations, min_replicas=1, scale_target=20, scale_metric="rps")
    ticks = replay(policy, trace(lambda t: 70, 180), ready=1)
    # ceil(70 / (20 x u)): u = 1 -> 3.5 -> 4; u = 0.5 -> 7; u = 0.7 -> 5
    assert ticks[-1].replicas == replicas


def test_a_revision_taken_over_at_zero_stays_at_zero_until_demand() -> None:
    policy = policy_from_annotations({}, scale_metric="rps")  # minReplicas 0
    scaler = Autoscaler(policy, 0.0, scale=0)
    decisions = []
    for now in range(100):
        scaler.record(now, rps=1.0 if now == 90 else 0.0)  # one request at 90
        decisions.append(scaler.desired(now, 0).replicas)
    # No initial scale: it had been reached before. At 90 the windows hold one 1 among zeros: ceil(x / 140) = 1.
    assert decisions[:90] == [0] * 90 and decisions[90] == 1


def test_a_revision_taken_over_at_several_replicas_keeps_them_for_a_stable_window() -> None:
    policy = policy_from_annotations({}, scale_metric="rps")
    scaler = Autoscaler(policy, 0.0, scale=3)
    ready, history = 0, []
    for now in range(100):
        scaler.record(now, rps=0.0)
        decision = scaler.desired(now, ready)
        history.append((now, decision.replicas, decision.panicking))
        ready = decision.replicas
    # Knative starts in panic over more than one replica with that scale as the peak: 3 until more than 60 s have
    # passed (61), then the rate halves it (floor(3 / 2) = 1); the last replica goes once the recommendation of 0
    # (from 62) has stood for the 30 s grace period: at 92.
    assert all(replicas == 3 and panicking for now, replicas, panicking in history if now <= 60)
    kept = [(now, replicas) for now, replicas, _ in history if now in (61, 62, 91, 92)]
    assert kept == [(61, 1), (62, 1), (91, 1), (92, 0)]


def test_a_revision_taken_over_at_one_replica_is_kept_like_a_new_one() -> None:
    policy = policy_from_annotations({}, scale_metric="rps")
    ticks = replay(policy, trace(lambda t: 0, 120))
    scaler = Autoscaler(policy, 0.0, scale=1)
    ready, taken_over = 0, []
    for now in range(120):
        scaler.record(now, rps=0.0)
        taken_over.append(scaler.desired(now, ready).replicas)
        ready = taken_over[-1]
    # A new revision: its initial replica for a stable window and the grace period (60 + 30); taken over at 1, same.
    assert taken_over == [tick.replicas for tick in ticks] and taken_over.index(0) == 90


def test_a_policy_change_keeps_the_windows_and_the_decision() -> None:
    scaler = Autoscaler(RPS_20, 0.0)
    for now in range(60):
        scaler.record(now, rps=70.0)
        scaler.desired(now, 5)
    looser = policy_from_annotations({}, min_replicas=1, scale_target=35, scale_metric="rps")  # 35 x 0.7 = 24.5
    scaler.update(looser)
    scaler.record(60, rps=70.0)
    # The 60 s of observations stay: ceil(70 / 24.5) = 3 at once, within max-scale-down-rate (floor(5 / 2) = 2).
    assert scaler.desired(60, 5).replicas == 3
