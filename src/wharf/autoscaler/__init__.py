"""Serverless autoscaling: the Knative Pod Autoscaler's algorithm as a pure, deterministic component.

`policy_from_annotations` resolves a revision's `ScalingPolicy`; an `Autoscaler` per revision takes one load sample
per tick (`record`) and answers the desired replica count (`desired`). Time is always passed in. This package
imports nothing else of Wharf's.
"""

from wharf.autoscaler.annotations import Metric
from wharf.autoscaler.kpa import Autoscaler, Decision
from wharf.autoscaler.policy import KNATIVE_DEFAULTS, AutoscalerDefaults, ScalingPolicy, policy_from_annotations

__all__ = [
    "KNATIVE_DEFAULTS",
    "Autoscaler",
    "AutoscalerDefaults",
    "Decision",
    "Metric",
    "ScalingPolicy",
    "policy_from_annotations",
]
