"""Knative's autoscaling settings: their names, how their text reads, and the values they allow.

A setting may be platform-wide (a key of Knative's `config-autoscaler` ConfigMap), per revision (an
`autoscaling.knative.dev/...` annotation), or both. Where Knative renamed an annotation to kebab-case it still reads
the older camelCase name too (`minScale` for `min-scale`); so does Wharf, and setting both is an error. Durations are
written as Go writes them (`60s`, `1m30s`, `500ms`, `0`); the allowed ranges are Knative's.

Knative annotations that Wharf's autoscaler does not implement (`target-burst-capacity`, `activation-scale`,
`metric-aggregation-algorithm`, the HPA class) are refused rather than ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

PREFIX = "autoscaling.knative.dev/"
METRIC_ANNOTATION = PREFIX + "metric"
CLASS_ANNOTATION = PREFIX + "class"
KPA_CLASS = "kpa.autoscaling.knative.dev"

Metric = Literal["concurrency", "rps"]
TARGET_MIN = 0.01  # Knative's lowest per-replica target

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_DURATION = re.compile(r"([+-]?)((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _number(text: str) -> float:
    if not _NUMBER.fullmatch(text) or not math.isfinite(value := float(text)):
        raise ValueError("must be a number")
    return value


def _integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError("must be a whole number")
    return int(text)


def _duration(text: str) -> float:
    """Seconds in a Go duration such as `90s`, `1m30s`, `1.5h` or `0`."""
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError("must be a duration such as 60s, 1m30s or 500ms")
    seconds = math.fsum(float(amount) * _UNIT_S[unit] for amount, unit in _DURATION_PART.findall(match[2]))
    return -seconds if match[1] == "-" else seconds


_READERS: dict[str, Callable[[str], float]] = {"number": _number, "integer": _integer, "duration": _duration}


@dataclass(frozen=True, slots=True)
class Setting:
    """One numeric setting: where it is set, how its text reads, and which values it allows."""

    config_key: str | None  # its key in `config-autoscaler`; None for a per-revision setting only
    annotations: tuple[str, ...]  # its annotation names after the prefix, current spelling first; () if global only
    kind: Literal["number", "integer", "duration"]
    low: float = 0.0
    high: float = math.inf
    above_low: bool = False  # the low end itself is not allowed

    def read(self, name: str, text: str) -> float:
        """The value of `text`, set under `name`; ValueError naming it when unreadable or out of range."""
        try:
            value = _READERS[self.kind](text)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}, got {text!r}") from None
        return self.check(name, value)

    def check(self, name: str, value: float) -> float:
        """`value` itself when allowed; ValueError naming `name` otherwise."""
        low_ok = value > self.low if self.above_low else value >= self.low
        if not (low_ok and value <= self.high):
            unit = "s" if self.kind == "duration" else ""
            raise ValueError(f"{name}: must be {self._allowed(unit)}, got {value:g}{unit}")
        return value

    def _allowed(self, unit: str) -> str:
        if self.high < math.inf:
            return f"between {self.low:g}{unit} and {self.high:g}{unit}"
        return f"{'>' if self.above_low else '>='} {self.low:g}{unit}"


# Keyed by the matching field of AutoscalerDefaults (and ScalingPolicy's `target`).
SETTINGS: dict[str, Setting] = {
    "container_concurrency_target_default": Setting("container-concurrency-target-default", (), "number", TARGET_MIN),
    "requests_per_second_target_default": Setting("requests-per-second-target-default", (), "number", TARGET_MIN),
    "target": Setting(None, ("target",), "number", TARGET_MIN),
    "target_utilization_percentage": Setting(
        "container-concurrency-target-percentage",
        ("target-utilization-percentage", "targetUtilizationPercentage"),
        "number",
        1.0,
        100.0,
    ),
    "stable_window_s": Setting("stable-window", ("window",), "duration", 6.0, 3600.0),
    "panic_window_percentage": Setting(
        "panic-window-percentage", ("panic-window-percentage", "panicWindowPercentage"), "number", 1.0, 100.0
    ),
    "panic_threshold_percentage": Setting(
        "panic-threshold-percentage",
        ("panic-threshold-percentage", "panicThresholdPercentage"),
        "number",
        110.0,
        1000.0,
    ),
    "max_scale_up_rate": Setting("max-scale-up-rate", (), "number", 1.0, above_low=True),
    "max_scale_down_rate": Setting("max-scale-down-rate", (), "number", 1.0, above_low=True),
    "min_scale": Setting("min-scale", ("min-scale", "minScale"), "integer"),
    "max_scale": Setting("max-scale", ("max-scale", "maxScale"), "integer"),
    "initial_scale": Setting("initial-scale", ("initial-scale", "initialScale"), "integer"),
    "scale_down_delay_s": Setting("scale-down-delay", ("scale-down-delay",), "duration", 0.0, 3600.0),
    "scale_to_zero_grace_period_s": Setting("scale-to-zero-grace-period", (), "duration"),
    "scale_to_zero_pod_retention_period_s": Setting(
        "scale-to-zero-pod-retention-period",
        ("scale-to-zero-pod-retention-period", "scaleToZeroPodRetentionPeriod"),
        "duration",
    ),
}

_KNOWN = {PREFIX + name for setting in SETTINGS.values() for name in setting.annotations}
_KNOWN |= {METRIC_ANNOTATION, CLASS_ANNOTATION}


def read_metric(name: str, text: str) -> Metric:
    """The scaling metric `text` names; ValueError naming `name` for cpu, memory or anything unknown."""
    if text in ("cpu", "memory"):
        raise ValueError(
            f"{name}: scaling on {text} needs Kubernetes' HPA; Wharf's autoscaler scales on concurrency or rps"
        )
    if text not in get_args(Metric):
        raise ValueError(f"{name}: must be concurrency or rps, got {text!r}")
    return text  # type: ignore[return-value]  # checked against Metric just above


def read_annotations(annotations: Mapping[str, str]) -> tuple[dict[str, float], Metric | None]:
    """The numeric settings given by `annotations` (keyed as in SETTINGS) and the metric, if one is given.

    Annotations outside the `autoscaling.knative.dev/` prefix are not looked at.
    """
    for key in annotations:
        if key.startswith(PREFIX) and key not in _KNOWN:
            known = ", ".join(sorted(k.removeprefix(PREFIX) for k in _KNOWN))
            raise ValueError(f"{key}: not an autoscaling annotation Wharf reads (it reads {known})")
    autoscaler_class = annotations.get(CLASS_ANNOTATION, KPA_CLASS)
    if autoscaler_class != KPA_CLASS:
        raise ValueError(f"{CLASS_ANNOTATION}: Wharf scales with Knative's KPA ({KPA_CLASS}), got {autoscaler_class!r}")
    values: dict[str, float] = {}
    for field, setting in SETTINGS.items():
        given = [PREFIX + name for name in setting.annotations if PREFIX + name in annotations]
        if len(given) > 1:
            raise ValueError(f"{given[0]}: set it once, not also as {', '.join(given[1:])}")
        if given:
            values[field] = setting.read(given[0], annotations[given[0]])
    metric = annotations.get(METRIC_ANNOTATION)
    return values, None if metric is None else read_metric(METRIC_ANNOTATION, metric)
