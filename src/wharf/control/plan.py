"""From an applied InferenceService to what the reconciler runs: the predictor's revision and its rollout plan.

A revision's `replica` dictionary is everything a replica of it needs (`wharf serve` arguments and environment);
it is stored with the revision, so an older revision keeps running the spec it was created from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wharf.autoscaler import ScalingPolicy, policy_from_annotations
from wharf.control.spec import InferenceService, RolloutPolicy, component_fingerprint, parse_manifest, parse_manifests
from wharf.errors import ConfigurationError

ISVC_KIND = "InferenceService"
KNATIVE_PREFIX = "autoscaling.knative.dev/"


@dataclass(frozen=True, slots=True)
class Document:
    """One applied document, in canonical form (defaults filled)."""

    kind: str
    namespace: str
    name: str
    manifest: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PredictorPlan:
    fingerprint: str
    replica: dict[str, Any]
    model_name: str
    canary_percent: int | None
    min_replicas: int
    timeout_s: float
    container_concurrency: int
    policy: RolloutPolicy
    scaling: ScalingPolicy


def parse(text: str) -> list[Document]:
    """Validate every document of a YAML (or JSON) text; raises SpecError naming each problem."""
    return [Document(m.kind, m.namespace, m.name, m.to_manifest()) for m in parse_manifests(text)]


def unserved_fields(manifest: dict[str, Any]) -> list[str]:
    """Valid parts of a spec that this release validates but cannot serve yet (they change what clients get)."""
    spec = manifest["spec"]
    return [
        *(component for component in ("transformer", "explainer") if spec.get(component)),
        *(f"predictor.{field}" for field in ("logger",) if spec["predictor"].get(field)),
    ]


def predictor_plan(manifest: dict[str, Any]) -> PredictorPlan:
    service = parse_manifest(manifest)
    assert isinstance(service, InferenceService)
    predictor = service.spec.predictor
    model = predictor.model_spec()
    env = {var.name: var.value for var in model.env}
    env["WHARF_REQUEST_TIMEOUT_S"] = str(predictor.timeout)
    if predictor.batcher is not None:
        env["WHARF_MAX_BATCH_SIZE"] = str(predictor.batcher.max_batch_size)
        env["WHARF_MAX_BATCH_LATENCY_MS"] = str(predictor.batcher.max_latency)
    replica = {
        "model_name": service.model_name,
        "model_uri": model.storage_uri,
        "runtime": None if model.is_custom else model.model_format.name,
        "env": env,
        "args": list(model.args),
    }
    return PredictorPlan(
        fingerprint=component_fingerprint(predictor),
        replica=replica,
        model_name=service.model_name,
        canary_percent=predictor.canary_traffic_percent,
        min_replicas=predictor.min_replicas,
        timeout_s=float(predictor.timeout),
        container_concurrency=predictor.container_concurrency,
        policy=service.rollout_policy,
        scaling=_scaling(service),
    )


def _scaling(service: InferenceService) -> ScalingPolicy:
    """The predictor's autoscaling policy: its spec fields, else its Knative annotations, else Knative's defaults.

    minReplicas and scaleMetric always have a value after defaulting; an annotation setting them wins over a
    value the user may not have written (KServe, too, turns these fields into the same annotations).
    """
    predictor = service.spec.predictor
    annotations = service.metadata.annotations
    knative = {key.removeprefix(KNATIVE_PREFIX) for key in annotations if key.startswith(KNATIVE_PREFIX)}
    try:
        return policy_from_annotations(
            {k: v for k, v in annotations.items() if k.startswith(KNATIVE_PREFIX)},
            min_replicas=None if knative & {"min-scale", "minScale"} else predictor.min_replicas,
            max_replicas=predictor.max_replicas or None,
            scale_target=predictor.scale_target,
            scale_metric=None if "metric" in knative else predictor.scale_metric,
            container_concurrency=predictor.container_concurrency,
        )
    except ValueError as e:
        raise ConfigurationError(f"InferenceService {service.namespace}/{service.name}: {e}") from None
