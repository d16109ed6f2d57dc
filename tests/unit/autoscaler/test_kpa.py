"""The KPA algorithm on recorded load traces, one sample and one decision a second."""

from __future__ import annotations

import math

import pytest

from wharf.autoscaler import Autoscaler, AutoscalerDefaults, ScalingPolicy

from .traces import Trace, changes, first, policy, replay, trace

STEP_AT = 60  # the step and spike traces start with a minute without load, so the windows are full of zeros


def step(level: float) -> Trace:
    return trace(lambda t: level if t >= STEP_AT else 0, 240)


def test_step_converges_within_the_stable_window() -> None:
    ticks = replay(policy(min_replicas=1, target="10", panic_threshold_percentage="1000"), step(50))
    assert not any(tick.decision.panicking for tick in ticks)
    reached = first(ticks, lambda tick: tick.replicas == 5).time
    assert STEP_AT + 6 < reached <= STEP_AT + 60
    assert [tick.replicas for tick in ticks if tick.time >= reached] == [5] * int(240 - reached)
    assert max(tick.replicas for tick in ticks) == 5


def test_step_panics_and_converges_within_the_panic_window() -> None:
    ticks = replay(policy(min_replicas=1, target="10"), step(50))
    assert first(ticks, lambda tick: tick.decision.panicking).time == STEP_AT + 1
    reached = first(ticks, lambda tick: tick.replicas == 5)
    assert reached.time <= STEP_AT + 6 and reached.decision.panicking
    assert max(tick.replicas for tick in ticks) == 5
    # Only the first tick is over the threshold (2 wanted, 1 ready); the replicas keep up from then on.
    calm = first(ticks, lambda tick: tick.time > STEP_AT and not tick.decision.panicking)
    assert calm.time == STEP_AT + 1 + 60 + 1  # more than a stable window after it (Knative: panicTime+60s < now)
    assert all(tick.replicas == 5 for tick in ticks if tick.time >= reached.time)


def test_spike_panics_up_within_the_panic_window_and_holds_while_panicking() -> None:
    spike = trace(lambda t: 100 if STEP_AT <= t < STEP_AT + 10 else 0, 240)
    ticks = replay(policy(min_replicas=1, target="10"), spike)
    assert first(ticks, lambda tick: tick.replicas >= 10).time < STEP_AT + 6
    panic = [tick for tick in ticks if tick.decision.panicking]
    assert panic and all(b.replicas >= a.replicas for a, b in zip(panic, panic[1:]))
    assert all(tick.replicas == 10 for tick in panic[-50:])  # well after the spike, still 10
    after = [tick for tick in ticks if tick.time > panic[-1].time]
    assert after[0].replicas < 10  # scales down once panic ends...
    assert all(tick.replicas >= tick.ready // 2 for tick in after)  # ...no faster than max-scale-down-rate 2
    assert after[-1].replicas == 1


def test_a_burst_at_zero_replicas_panics() -> None:
    ticks = replay(policy(target="10"), trace(lambda t: 0 if t < 120 else 600, 130), ready=0)
    burst = first(ticks, lambda tick: tick.load > 0)
    assert burst.ready == 0 and burst.decision.panicking
    assert burst.replicas == math.ceil(600 / 6 / 10)  # the panic window holds one sample of 600 among six
    assert ticks[-1].replicas == 60


def test_slow_ramp_tracks_the_stable_average_without_panic() -> None:
    ramp = trace(lambda t: 20 + max(0, t - 60) / 2, 360)  # +30 concurrent requests a minute, from 20
    ticks = replay(policy(min_replicas=1, target="10"), ramp, ready=2)
    assert not any(tick.decision.panicking for tick in ticks)
    for tick in ticks:
        window = [t.load for t in ticks if tick.time - 60 < t.time <= tick.time]
        assert tick.replicas == math.ceil(sum(window) / len(window) / 10)
    assert ticks[-1].replicas == 16


def test_a_steeper_ramp_panics() -> None:
    ramp = trace(lambda t: 20 + max(0, t - 60) * 2, 360)
    assert any(tick.decision.panicking for tick in replay(policy(min_replicas=1, target="10"), ramp, ready=2))


def sawtooth() -> Trace:
    """Load ramps from 0 to 100 over 30 s, drops to 0 for 30 s, and again."""
    return trace(lambda t: 100 * (t % 60) / 30 if t % 60 < 30 else 0, 240)


DROPS = (30.0, 90.0, 150.0, 210.0)


def sawtooth_policy(**annotations: str) -> ScalingPolicy:
    """A short stable window, so that the scale-down rules rather than the averaging show; no panic."""
    return policy(min_replicas=1, target="1", window="6s", panic_threshold_percentage="1000", **annotations)


def test_sawtooth_scale_down_is_limited_by_the_max_scale_down_rate() -> None:
    ticks = replay(sawtooth_policy(), sawtooth())
    assert not any(tick.decision.panicking for tick in ticks)
    assert all(tick.replicas >= tick.ready // 2 for tick in ticks)
    limited = [tick for tick in ticks if "max-scale-down-rate" in tick.decision.reason]
    assert limited and all(tick.replicas == tick.ready // 2 for tick in limited)
    after_drop = [tick.replicas for tick in ticks if DROPS[0] - 1 <= tick.time < DROPS[0] + 12]
    # The 6 s average falls to 17, then to 0 in one tick; the rate halves the replicas instead.
    assert after_drop == [89, 75, 62, 47, 32, 17, 8, 4, 2, 1, 1, 1, 1]


@pytest.mark.parametrize("delay_s", [10, 20])
def test_sawtooth_scale_down_waits_for_the_scale_down_delay(delay_s: int) -> None:
    prompt = replay(sawtooth_policy(), sawtooth())
    delayed = replay(sawtooth_policy(scale_down_delay=f"{delay_s}s"), sawtooth())
    for drop in DROPS:
        peak = next(tick.replicas for tick in prompt if tick.time == drop - 1)
        assert next(tick.replicas for tick in prompt if tick.time == drop) < peak
        held = [tick.replicas for tick in delayed if drop - 1 <= tick.time < drop - 1 + delay_s]
        assert held == [peak] * delay_s
        released = next(tick for tick in delayed if tick.time == drop - 1 + delay_s)
        assert released.replicas < peak and "scale-down-delay" in released.decision.reason


def burst_then_idle(seconds: int = 240) -> Trace:
    """50 concurrent requests for 10 s (the last at t = 9), then none."""
    return trace(lambda t: 50 if t < 10 else 0, seconds)


@pytest.mark.parametrize(
    ("defaults", "annotations", "zero_at"),
    [
        (AutoscalerDefaults(), {}, 9 + 60 + 30),  # stable window, then the grace period
        (AutoscalerDefaults(), {"scale_to_zero_pod_retention_period": "45s"}, 9 + 60 + 45),
        (AutoscalerDefaults(scale_to_zero_grace_period_s=10), {}, 9 + 60 + 10),
        (AutoscalerDefaults(scale_to_zero_grace_period_s=10), {"window": "30s"}, 9 + 30 + 10),
    ],
)
def test_idle_scales_to_zero_after_the_stable_window_and_the_longer_of_grace_and_retention(
    defaults: AutoscalerDefaults, annotations: dict[str, str], zero_at: int
) -> None:
    ticks = replay(policy(target="10", defaults=defaults, **annotations), burst_then_idle())
    assert all(tick.replicas >= 1 for tick in ticks if tick.time < zero_at)
    assert all(tick.replicas == 0 for tick in ticks if tick.time >= zero_at)
    held = next(tick for tick in ticks if tick.time == zero_at - 1)
    assert held.decision.reason.endswith("scale-to-zero grace -> 1")


def test_scale_down_delay_holds_each_step_down_and_so_delays_scale_to_zero() -> None:
    ticks = replay(policy(target="10", scale_down_delay="20s"), burst_then_idle())
    # The burst panics at 0, the only tick over the threshold: panic holds 5 while 60 s have not yet passed since
    # (up to 60 inclusive). Then each step the rate allows (5 -> 2 -> 1 -> 0) is held for 20 s from the last time it
    # was recommended, and the last replica for the 30 s grace period after that.
    assert changes(ticks) == [(0.0, 5), (60.0 + 20, 2), (80.0 + 20, 1), (100.0 + 20 + 30, 0)]


@pytest.mark.parametrize(
    ("min_replicas", "defaults", "floor"),
    [(2, AutoscalerDefaults(), 2), (0, AutoscalerDefaults(enable_scale_to_zero=False), 1)],
)
def test_idle_never_goes_below_min_scale(min_replicas: int, defaults: AutoscalerDefaults, floor: int) -> None:
    ticks = replay(policy(min_replicas=min_replicas, target="10", defaults=defaults), burst_then_idle(600))
    assert min(tick.replicas for tick in ticks) == floor == ticks[-1].replicas


def test_a_new_revision_without_traffic_keeps_its_initial_replica_for_a_stable_window_and_the_grace_period() -> None:
    ticks = replay(policy(), trace(lambda t: 0, 120))
    assert ticks[0].replicas == 1 and "initial-scale -> 1" in ticks[0].decision.reason
    assert first(ticks, lambda tick: tick.replicas == 0).time == 60 + 30


def test_demand_at_zero_asks_for_one_replica_at_once() -> None:
    ticks = replay(policy(), trace(lambda t: 1 if t == 200 else 0, 210))
    assert next(tick for tick in ticks if tick.time == 199).replicas == 0
    woken = next(tick for tick in ticks if tick.time == 200)
    assert woken.ready == 0 and woken.replicas == 1


def test_new_activity_cancels_a_pending_scale_to_zero() -> None:
    ticks = replay(policy(target="10"), trace(lambda t: 5 if t < 10 or t == 80 else 0, 240))
    assert all(tick.replicas >= 1 for tick in ticks if tick.time < 80 + 60 + 30)
    assert first(ticks, lambda tick: tick.replicas == 0).time == 80 + 60 + 30


def test_initial_scale_is_reached_once_then_the_load_decides() -> None:
    scaler = Autoscaler(policy(min_replicas=1, initial_scale="3"), 0.0)
    decisions = []
    for now, ready in enumerate([0, 0, 2, 3, 3]):
        scaler.record(now, concurrency=0)
        decisions.append(scaler.desired(now, ready).replicas)
    assert decisions == [3, 3, 3, 1, 1]


def test_max_scale_bounds_the_replicas() -> None:
    ticks = replay(policy(max_replicas=3, target="10"), step(1000))
    assert max(tick.replicas for tick in ticks) == 3 == ticks[-1].replicas
    assert ticks[-1].decision.reason.endswith("max-scale -> 3")


def test_max_scale_up_rate_bounds_each_step() -> None:
    ticks = replay(policy(target="1", defaults=AutoscalerDefaults(max_scale_up_rate=2)), step(1000), ready=1)
    assert all(tick.replicas <= math.ceil(2 * max(tick.ready, 1)) for tick in ticks)
    assert [tick.replicas for tick in ticks if STEP_AT <= tick.time < STEP_AT + 5] == [2, 4, 8, 16, 32]


def test_rps_metric_scales_on_requests_per_second() -> None:
    ticks = replay(policy(metric="rps", panic_threshold_percentage="1000"), trace(lambda t: 900, 120), ready=1)
    assert ticks[-1].replicas == math.ceil(900 / 200)  # Knative's default rps target
    assert "rps 900 over 60s" in ticks[-1].decision.reason


def test_record_needs_the_policy_metric_and_a_sane_sample() -> None:
    scaler = Autoscaler(policy(metric="rps"), 0.0)
    with pytest.raises(ValueError, match="scales on rps"):
        scaler.record(0.0, concurrency=3)
    with pytest.raises(ValueError, match="must be >= 0"):
        scaler.record(0.0, rps=-1)
    scaler.record(1.0, concurrency=3, rps=400)
    with pytest.raises(ValueError, match="before the last one"):
        scaler.record(0.5, rps=1)
    with pytest.raises(ValueError, match="ready_replicas"):
        scaler.desired(1.0, -1)
    assert scaler.desired(1.0, 1).replicas == 2
