"""The scaling settings of one revision, resolved from the platform's defaults, Knative's annotations and the
replica fields of a KServe component.

Defaults are Knative's, as its Serving documentation gives them (knative.dev/docs/serving/autoscaling/):
- "Additional autoscaling configuration for Knative Pod Autoscaler" (kpa-specific): stable window 60s, panic
  window 10% of it, panic threshold 200%, max scale up rate 1000, max scale down rate 2.
- "Configuring scale bounds" (scale-bounds): min-scale 0, max-scale 0 (no bound), initial-scale 1 (0 only where
  allow-zero-initial-scale is set), scale-down-delay 0s.
- "Configuring scale to zero" (scale-to-zero): enabled, grace period 30s, last pod retention period 0s.
- "Targets" (autoscaling-targets), "Configuring concurrency" (concurrency) and "Configuring the requests per
  second (RPS) target" (rps-target): 100 concurrent requests or 200 requests/s per replica, target utilisation 70%.

The per-replica target is Knative's (ResolveMetricTarget in its autoscaler): a total per replica (the `target`
annotation or `scaleTarget`; else `containerConcurrency`; else the metric's default) times the target utilisation
(the annotation; else 70%, which for concurrency is `container-concurrency-target-percentage` and for rps a fixed
figure in Knative), never below 0.01. So `scaleTarget: 20` with rps aims for 14 requests/s per replica.

Precedence: the component fields `minReplicas`, `maxReplicas`, `scaleTarget` and `scaleMetric` when given (KServe
turns them into these same annotations), then the annotation, then the platform default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from wharf.autoscaler.annotations import PREFIX, SETTINGS, TARGET_MIN, Metric, read_annotations, read_metric


def _check_bounds(name: str, min_scale: int, max_scale: int) -> None:
    if max_scale and min_scale > max_scale:
        raise ValueError(f"{name}: must be <= max-scale ({max_scale}), got {min_scale}")


def _check_initial_scale(name: str, initial_scale: int, defaults: AutoscalerDefaults) -> None:
    if initial_scale == 0 and not defaults.allow_zero_initial_scale:
        raise ValueError(f"{name}: 0 is allowed only where allow-zero-initial-scale is set")


@dataclass(frozen=True, slots=True)
class AutoscalerDefaults:
    """Platform-wide settings: Knative's `config-autoscaler` keys, with Knative's defaults (seconds for durations).

    Scale rates and the scale-to-zero grace period are platform-wide only, as in Knative (no annotation sets them).
    """

    container_concurrency_target_default: float = 100.0
    requests_per_second_target_default: float = 200.0
    target_utilization_percentage: float = 70.0  # Knative's container-concurrency-target-percentage
    rps_target_utilization_percentage: float = 70.0  # Knative's TargetUtilization: no config-autoscaler key sets it
    stable_window_s: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    min_scale: int = 0
    max_scale: int = 0
    initial_scale: int = 1
    allow_zero_initial_scale: bool = False
    scale_down_delay_s: float = 0.0
    enable_scale_to_zero: bool = True
    scale_to_zero_grace_period_s: float = 30.0
    scale_to_zero_pod_retention_period_s: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            setting = SETTINGS.get(field.name)
            if setting is not None and setting.config_key is not None:
                setting.check(setting.config_key, getattr(self, field.name))
        SETTINGS["target_utilization_percentage"].check(
            "rps_target_utilization_percentage", self.rps_target_utilization_percentage
        )
        _check_bounds("min-scale", self.min_scale, self.max_scale)
        _check_initial_scale("initial-scale", self.initial_scale, self)


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """Everything the KPA algorithm needs for one revision; build it with `policy_from_annotations`."""

    metric: Metric
    target: float  # the metric's value per replica to aim for
    stable_window_s: float
    panic_window_s: float
    panic_threshold: float  # a ratio: 2.0 panics when the panic window asks for twice the ready replicas
    max_scale_up_rate: float
    max_scale_down_rate: float
    min_scale: int
    max_scale: int  # 0: no upper bound
    initial_scale: int  # what a new revision reaches once before it follows the load; within [min, max]
    scale_down_delay_s: float
    scale_to_zero_grace_period_s: float
    scale_to_zero_pod_retention_period_s: float


KNATIVE_DEFAULTS = AutoscalerDefaults()


def policy_from_annotations(
    annotations: Mapping[str, str],
    *,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    scale_target: float | None = None,
    scale_metric: str | None = None,
    container_concurrency: int = 0,
    defaults: AutoscalerDefaults = KNATIVE_DEFAULTS,
) -> ScalingPolicy:
    """The policy of a revision with these `autoscaling.knative.dev/` annotations and component fields.

    Pass a component field as None where the user left it unset, so that an annotation may set it. Raises
    ValueError naming the annotation (or field) for a value Knative would refuse.

    The per-replica target is Knative's: see the module docstring.
    """
    given, annotated_metric = read_annotations(annotations)

    def setting(name: str, component_field: str = "", value: float | None = None) -> float:
        """The component field's `value` when given, else the annotation's, else the platform default."""
        if value is not None:
            return SETTINGS[name].check(component_field, value)
        return given.get(name, getattr(defaults, name))

    metric = annotated_metric or "concurrency"
    if scale_metric is not None:
        metric = read_metric("scaleMetric", scale_metric)
    if container_concurrency < 0:
        raise ValueError(f"containerConcurrency: must be >= 0, got {container_concurrency}")
    min_scale = int(setting("min_scale", "minReplicas", min_replicas))
    if not defaults.enable_scale_to_zero:
        min_scale = max(min_scale, 1)
    max_scale = int(setting("max_scale", "maxReplicas", max_replicas))
    _check_bounds(f"{PREFIX}min-scale (minReplicas)", min_scale, max_scale)
    initial_scale = int(setting("initial_scale"))
    _check_initial_scale(PREFIX + "initial-scale", initial_scale, defaults)
    initial_scale = max(initial_scale, min_scale)  # Knative starts a revision at the larger of the two,
    if max_scale:
        initial_scale = min(initial_scale, max_scale)  # and never above the upper bound
    explicit_target = given.get("target")
    if scale_target is not None:
        explicit_target = SETTINGS["target"].check("scaleTarget", scale_target)
    utilization = given.get("target_utilization_percentage")
    target = _target(metric, explicit_target, container_concurrency, utilization, defaults)
    stable_window_s = setting("stable_window_s")
    return ScalingPolicy(
        metric=metric,
        target=target,
        stable_window_s=stable_window_s,
        panic_window_s=stable_window_s * setting("panic_window_percentage") / 100,
        panic_threshold=setting("panic_threshold_percentage") / 100,
        max_scale_up_rate=defaults.max_scale_up_rate,
        max_scale_down_rate=defaults.max_scale_down_rate,
        min_scale=min_scale,
        max_scale=max_scale,
        initial_scale=initial_scale,
        scale_down_delay_s=setting("scale_down_delay_s"),
        scale_to_zero_grace_period_s=defaults.scale_to_zero_grace_period_s,
        scale_to_zero_pod_retention_period_s=setting("scale_to_zero_pod_retention_period_s"),
    )


def _target(
    metric: Metric,
    explicit: float | None,
    container_concurrency: int,
    utilization: float | None,
    defaults: AutoscalerDefaults,
) -> float:
    """The per-replica target: a total per replica times the target utilisation, as Knative resolves them."""
    if metric == "rps":
        total = defaults.requests_per_second_target_default
        percent = defaults.rps_target_utilization_percentage
    else:
        total = container_concurrency or defaults.container_concurrency_target_default
        percent = defaults.target_utilization_percentage
    if explicit is not None:
        # Knative: of a soft target and a hard limit, the smaller one is the total.
        total = min(explicit, container_concurrency) if metric == "concurrency" and container_concurrency else explicit
    if utilization is not None:
        percent = utilization
    return max(TARGET_MIN, total * (percent / 100))
