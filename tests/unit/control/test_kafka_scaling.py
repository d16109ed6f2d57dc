"""How many members a KafkaSource runs, and the requests its lag puts on its sink's autoscaler: deterministic, the
time given."""

from __future__ import annotations

from wharf.autoscaler import policy_from_annotations
from wharf.control.kafka_scaling import MemberScale, calls_waiting
from wharf.control.metrics import ControlMetrics
from wharf.control.scaling import RevisionScaling
from wharf.control.spec.kafkasource import MemberBounds

BOUNDS = MemberBounds(least=1, most=4, lag_threshold=100)
DELAY = 30.0


def test_a_source_starts_with_its_least_members_and_never_fewer_than_one() -> None:
    assert MemberScale.first(BOUNDS).members == 1
    assert MemberScale.first(MemberBounds(least=3)).members == 3
    assert MemberScale(1).next(BOUNDS, lag=0, partitions=8, now=0, scale_down_delay_s=DELAY).members == 1


def test_members_follow_the_lag_at_once_within_the_bounds_and_the_partitions() -> None:
    scale = MemberScale(1).next(BOUNDS, lag=250, partitions=8, now=0, scale_down_delay_s=DELAY)
    assert scale.members == 3 and "lag 250" in scale.reason
    assert scale.next(BOUNDS, lag=10_000, partitions=8, now=1, scale_down_delay_s=DELAY).members == 4
    capped = MemberScale(1).next(BOUNDS, lag=10_000, partitions=2, now=0, scale_down_delay_s=DELAY)
    assert capped.members == 2 and "one per partition (2)" in capped.reason
    assert MemberScale(1).next(BOUNDS, lag=10_000, partitions=None, now=0, scale_down_delay_s=DELAY).members == 4


def test_fewer_members_only_once_the_lag_stayed_low_for_the_delay_then_the_highest_figure_since() -> None:
    scale = MemberScale(4)
    scale = scale.next(BOUNDS, lag=150, partitions=8, now=100, scale_down_delay_s=DELAY)  # asks for 2
    assert scale.members == 4 and scale.lower_since == 100
    scale = scale.next(BOUNDS, lag=0, partitions=8, now=120, scale_down_delay_s=DELAY)  # asks for 1
    assert scale.members == 4
    scale = scale.next(BOUNDS, lag=0, partitions=8, now=130, scale_down_delay_s=DELAY)
    assert scale.members == 2 and scale.lower_since is None  # the highest figure asked for during the delay


def test_a_rise_during_the_delay_starts_it_over() -> None:
    scale = MemberScale(3).next(BOUNDS, lag=0, partitions=8, now=0, scale_down_delay_s=DELAY)
    scale = scale.next(BOUNDS, lag=300, partitions=8, now=10, scale_down_delay_s=DELAY)  # 3 again
    assert scale.members == 3 and scale.lower_since is None
    scale = scale.next(BOUNDS, lag=0, partitions=8, now=35, scale_down_delay_s=DELAY)
    assert scale.members == 3  # lower only since 35


def test_the_lag_asks_for_the_calls_the_members_can_have_in_flight() -> None:
    assert calls_waiting(0, members=1, max_batch=64, max_in_flight=8) == 0
    assert calls_waiting(1, members=1, max_batch=64, max_in_flight=8) == 1  # one message wakes a service at zero
    assert calls_waiting(200, members=1, max_batch=64, max_in_flight=8) == 4
    assert calls_waiting(20_000, members=2, max_batch=64, max_in_flight=8) == 16
    assert calls_waiting(5, members=0, max_batch=1, max_in_flight=8) == 5


def test_messages_waiting_in_kafka_wake_a_revision_scaled_to_zero() -> None:
    now = [0.0]
    scaling = RevisionScaling(0.0, ControlMetrics(), clock=lambda: now[0])
    policy = policy_from_annotations({"autoscaling.knative.dev/window": "6s"}, min_replicas=0)
    scaling.restore({"iris-predictor-00001": 0})
    for second in range(3):  # idle: it stays at zero
        now[0] = second
        scaling.observe_gateway("iris-predictor-00001", policy, None)
        assert scaling.replicas("iris-predictor-00001", policy, ready=0) == 0
    now[0] = 3
    scaling.observe_gateway("iris-predictor-00001", policy, None, waiting=1)  # one call's worth of lag
    assert scaling.replicas("iris-predictor-00001", policy, ready=0) == 1
