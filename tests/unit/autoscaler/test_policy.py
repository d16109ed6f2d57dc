"""Resolving a revision's scaling policy from defaults, Knative annotations and KServe component fields."""

from __future__ import annotations

import re

import pytest

from wharf.autoscaler import AutoscalerDefaults, ScalingPolicy, policy_from_annotations
from wharf.autoscaler.annotations import PREFIX

KNATIVE = ScalingPolicy(
    metric="concurrency",
    target=70.0,  # Knative's 100 concurrent requests x 70% utilisation
    stable_window_s=60.0,
    panic_window_s=6.0,
    panic_threshold=2.0,
    max_scale_up_rate=1000.0,
    max_scale_down_rate=2.0,
    min_scale=0,
    max_scale=0,
    initial_scale=1,
    scale_down_delay_s=0.0,
    scale_to_zero_grace_period_s=30.0,
    scale_to_zero_pod_retention_period_s=0.0,
)


def annotated(**settings: str) -> dict[str, str]:
    return {PREFIX + name: value for name, value in settings.items()}


def test_knative_defaults() -> None:
    assert policy_from_annotations({}) == KNATIVE


def test_other_annotations_are_not_looked_at() -> None:
    assert policy_from_annotations({"serving.wharf.dev/shadow-percent": "10", "example.com/window": "x"}) == KNATIVE


@pytest.mark.parametrize(
    ("name", "text", "field", "value"),
    [
        ("target", "50", "target", 35.0),  # x 70% utilisation
        ("target", "0.5", "target", 0.35),
        ("target", "0.01", "target", 0.01),  # never below Knative's TargetMin, 0.01
        ("metric", "rps", "metric", "rps"),
        ("window", "40s", "stable_window_s", 40.0),
        ("window", "1m30s", "stable_window_s", 90.0),
        ("window", "1h", "stable_window_s", 3600.0),
        ("panic-window-percentage", "20", "panic_window_s", 12.0),
        ("panicWindowPercentage", "20.0", "panic_window_s", 12.0),
        ("panic-threshold-percentage", "150", "panic_threshold", 1.5),
        ("panicThresholdPercentage", "1000", "panic_threshold", 10.0),
        ("min-scale", "2", "min_scale", 2),
        ("minScale", "2", "min_scale", 2),
        ("max-scale", "5", "max_scale", 5),
        ("maxScale", "5", "max_scale", 5),
        ("initial-scale", "3", "initial_scale", 3),
        ("initialScale", "3", "initial_scale", 3),
        ("scale-down-delay", "15m", "scale_down_delay_s", 900.0),
        ("scale-down-delay", "0", "scale_down_delay_s", 0.0),
        ("scale-to-zero-pod-retention-period", "1m5s", "scale_to_zero_pod_retention_period_s", 65.0),
        ("scaleToZeroPodRetentionPeriod", "500ms", "scale_to_zero_pod_retention_period_s", 0.5),
        ("class", "kpa.autoscaling.knative.dev", "target", 70.0),
    ],
)
def test_each_annotation(name: str, text: str, field: str, value: object) -> None:
    assert getattr(policy_from_annotations(annotated(**{name: text})), field) == value


def test_rps_has_its_own_default_target() -> None:
    assert policy_from_annotations(annotated(metric="rps")).target == 140.0  # 200 requests/s x 70%
    assert policy_from_annotations({}, scale_metric="rps").target == 140.0


@pytest.mark.parametrize(
    ("annotations", "container_concurrency", "target"),
    [
        ({}, 10, 7.0),  # containerConcurrency x Knative's 70% utilisation
        ({"target-utilization-percentage": "80"}, 10, 8.0),
        ({"targetUtilizationPercentage": "50"}, 3, 1.5),
        ({"target": "5"}, 10, 3.5),  # the soft target x 70%
        ({"target": "50"}, 10, 7.0),  # a soft target never above the hard limit, then x 70%
        ({"target": "5", "target-utilization-percentage": "100"}, 10, 5.0),
        ({"target-utilization-percentage": "80"}, 0, 80.0),  # Knative's default 100 x 80%
        ({"metric": "rps"}, 10, 140.0),  # the hard limit is about concurrency, not rps: 200 x 70%
        ({"metric": "rps", "target": "50"}, 10, 35.0),
        ({"metric": "rps", "target": "20"}, 0, 14.0),  # the case: 70 requests/s want ceil(70/14) = 5
        ({"metric": "rps", "target": "20", "target-utilization-percentage": "50"}, 0, 10.0),
    ],
)
def test_target_per_replica(annotations: dict[str, str], container_concurrency: int, target: float) -> None:
    policy = policy_from_annotations(annotated(**annotations), container_concurrency=container_concurrency)
    assert policy.target == target


def test_component_fields_win_over_annotations() -> None:
    annotations = annotated(**{"min-scale": "1", "max-scale": "9", "target": "50", "metric": "concurrency"})
    policy = policy_from_annotations(annotations, min_replicas=2, max_replicas=4, scale_target=20, scale_metric="rps")
    assert (policy.min_scale, policy.max_scale, policy.target, policy.metric) == (2, 4, 14.0, "rps")


def test_unset_component_fields_leave_the_annotations() -> None:
    annotations = annotated(**{"min-scale": "1", "max-scale": "9", "target": "50", "metric": "rps"})
    policy = policy_from_annotations(annotations)
    assert (policy.min_scale, policy.max_scale, policy.target, policy.metric) == (1, 9, 35.0, "rps")


@pytest.mark.parametrize(
    ("min_replicas", "max_replicas", "annotations", "initial_scale"),
    [
        (2, 0, {}, 2),  # a new revision starts with the larger of initial scale and min
        (0, 2, {"initial-scale": "5"}, 2),  # ...and never above max
        (1, 0, {"initial-scale": "4"}, 4),
    ],
)
def test_initial_scale_within_the_bounds(
    min_replicas: int, max_replicas: int, annotations: dict[str, str], initial_scale: int
) -> None:
    policy = policy_from_annotations(annotated(**annotations), min_replicas=min_replicas, max_replicas=max_replicas)
    assert policy.initial_scale == initial_scale


def test_platform_defaults() -> None:
    defaults = AutoscalerDefaults(
        container_concurrency_target_default=10,
        stable_window_s=30,
        max_scale_up_rate=2,
        max_scale_down_rate=4,
        scale_to_zero_grace_period_s=10,
        initial_scale=0,
        allow_zero_initial_scale=True,
        min_scale=1,
    )
    policy = policy_from_annotations({}, defaults=defaults)
    assert (policy.target, policy.stable_window_s, policy.panic_window_s) == (7.0, 30.0, 3.0)
    assert (policy.max_scale_up_rate, policy.max_scale_down_rate, policy.scale_to_zero_grace_period_s) == (2, 4, 10)
    assert (policy.min_scale, policy.initial_scale) == (1, 1)
    assert policy_from_annotations({}, min_replicas=0, defaults=defaults).initial_scale == 0


def test_scale_to_zero_disabled_keeps_one_replica() -> None:
    defaults = AutoscalerDefaults(enable_scale_to_zero=False)
    assert policy_from_annotations({}, min_replicas=0, defaults=defaults).min_scale == 1


@pytest.mark.parametrize(
    ("annotations", "named", "problem"),
    [
        ({"window": "5s"}, "window", "between 6s and 3600s, got 5s"),
        ({"window": "2h"}, "window", "between 6s and 3600s"),
        ({"window": "60"}, "window", "must be a duration"),
        ({"window": "1 m"}, "window", "must be a duration"),
        ({"panic-window-percentage": "0.5"}, "panic-window-percentage", "between 1 and 100"),
        ({"panic-threshold-percentage": "100"}, "panic-threshold-percentage", "between 110 and 1000"),
        ({"panicThresholdPercentage": "lots"}, "panicThresholdPercentage", "must be a number"),
        ({"target": "0"}, "target", ">= 0.01"),
        ({"target": "ten"}, "target", "must be a number"),
        ({"target": "nan"}, "target", "must be a number"),
        ({"target": "1e400"}, "target", "must be a number"),
        ({"target-utilization-percentage": "101"}, "target-utilization-percentage", "between 1 and 100"),
        ({"min-scale": "-1"}, "min-scale", ">= 0"),
        ({"min-scale": "1.5"}, "min-scale", "whole number"),
        ({"maxScale": "x"}, "maxScale", "whole number"),
        ({"min-scale": "3", "max-scale": "2"}, "min-scale", "must be <= max-scale (2), got 3"),
        ({"initial-scale": "0"}, "initial-scale", "allow-zero-initial-scale"),
        ({"scale-down-delay": "61m"}, "scale-down-delay", "between 0s and 3600s"),
        ({"scale-to-zero-pod-retention-period": "-1s"}, "scale-to-zero-pod-retention-period", ">= 0s, got -1s"),
        ({"metric": "cpu"}, "metric", "needs Kubernetes' HPA"),
        ({"metric": "latency"}, "metric", "concurrency or rps"),
        ({"class": "hpa.autoscaling.knative.dev"}, "class", "Knative's KPA"),
        ({"target-burst-capacity": "200"}, "target-burst-capacity", "not an autoscaling annotation Wharf reads"),
        ({"max-scale-down-rate": "4"}, "max-scale-down-rate", "not an autoscaling annotation Wharf reads"),
        ({"minscale": "1"}, "minscale", "not an autoscaling annotation Wharf reads"),
        ({"min-scale": "1", "minScale": "2"}, "min-scale", "set it once, not also as autoscaling.knative.dev/minScale"),
    ],
)
def test_bad_annotations_are_refused_by_name(annotations: dict[str, str], named: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(PREFIX + named)}[: ].*{re.escape(problem)}"):
        policy_from_annotations(annotated(**annotations))


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"min_replicas": -1}, "minReplicas: must be >= 0"),
        ({"max_replicas": -2}, "maxReplicas: must be >= 0"),
        ({"min_replicas": 3, "max_replicas": 2}, "must be <= max-scale (2)"),
        ({"scale_target": 0}, "scaleTarget: must be >= 0.01"),
        ({"scale_metric": "memory"}, "scaleMetric: scaling on memory needs Kubernetes' HPA"),
        ({"container_concurrency": -1}, "containerConcurrency: must be >= 0"),
    ],
)
def test_bad_component_fields_are_refused_by_name(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        policy_from_annotations({}, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"stable_window_s": 5}, "stable-window: must be between 6s and 3600s"),
        ({"max_scale_down_rate": 1}, "max-scale-down-rate: must be > 1"),
        ({"max_scale_up_rate": 0.5}, "max-scale-up-rate: must be > 1"),
        ({"container_concurrency_target_default": 0}, "container-concurrency-target-default: must be >= 0.01"),
        ({"target_utilization_percentage": 0}, "container-concurrency-target-percentage: must be between 1 and 100"),
        ({"scale_to_zero_grace_period_s": -1}, "scale-to-zero-grace-period: must be >= 0s"),
        ({"initial_scale": 0}, "initial-scale: 0 is allowed only where allow-zero-initial-scale is set"),
        ({"min_scale": 2, "max_scale": 1}, "must be <= max-scale (1), got 2"),
    ],
)
def test_bad_platform_defaults_are_refused_by_key(settings: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        AutoscalerDefaults(**settings)  # type: ignore[arg-type]
