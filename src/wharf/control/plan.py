"""From an applied InferenceService to what the reconciler runs: each component's revision and rollout plan.

A service has a predictor and may have a transformer in front of it and an explainer beside it. Each component has
revisions, a rollout and an autoscaler of its own. A revision's `replica` dictionary is everything a replica of it needs (`wharf serve`
arguments and environment); it is stored with the revision, so an older revision keeps running the spec it was
created from. A transformer's or an explainer's replica also names the predictor it calls (`predictor`: the
predictor's host on the gateway, the protocol and the model), so that the reconciler can point it at the gateway it
runs. An explainer calls the predictor, never the transformer (as KServe's does): it explains the predictor's model
on the predictor's inputs. A built-in explainer (`art`, `shap`) is the class `EXPLAINER_CLASS`, told its method by
WHARF_EXPLAINER_CONFIG (the manifest's section, and for SHAP where the predictor's artifact is).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf.autoscaler import ScalingPolicy, policy_from_annotations
from wharf.control.backends.node_selection import NodeSelection
from wharf.control.spec import (
    CUSTOM_FORMAT,
    MAX_DOCUMENTS,
    ComponentSpec,
    EnvVar,
    ExplainerContainer,
    ExplainerSpec,
    InferenceService,
    LoggerSpec,
    Manifest,
    ModelFormat,
    ModelSpec,
    RolloutPolicy,
    component_fingerprint,
    parse_manifest,
    parse_manifests,
)
from wharf.control.spec.trainedmodel import BUDGET_ENV, replica_budget
from wharf.errors import ConfigurationError

ISVC_KIND = "InferenceService"
KNATIVE_PREFIX = "autoscaling.knative.dev/"
PREDICTOR = "predictor"
TRANSFORMER = "transformer"
EXPLAINER = "explainer"
#: Every component, in the order a service lists them.
COMPONENTS = (PREDICTOR, TRANSFORMER, EXPLAINER)
#: The model class a replica of a built-in explainer runs.
EXPLAINER_CLASS = "wharf.explain.model:Explainer"
#: The environment variable that tells it its method (`wharf.explain` reads it).
EXPLAINER_CONFIG_ENV = "WHARF_EXPLAINER_CONFIG"
#: The fields of a built-in explainer's section that make its container, not its method.
_CONTAINER_FIELDS = frozenset(ExplainerContainer.model_fields) - {"storage_uri"}
#: The tags every gateway service has (`latest-NAME.NAMESPACE.domain` reaches the latest created revision,
#: `prev-...` the previously rolled-out one), as the reconciler names them.
TAGS = ("latest", "prev")


@dataclass(frozen=True, slots=True)
class Document:
    """One applied document, in canonical form (defaults filled), and as validated."""

    kind: str
    namespace: str
    name: str
    manifest: dict[str, Any]
    resource: Manifest


@dataclass(frozen=True, slots=True)
class ComponentPlan:
    """One component (predictor or transformer): its revision template and how it takes traffic and scales."""

    fingerprint: str
    replica: dict[str, Any]
    canary_percent: int | None
    timeout_s: float
    container_concurrency: int
    scaling: ScalingPolicy
    logger: dict[str, Any] | None  # url, mode and metadata_headers of its payload logger


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """An InferenceService's components, the one in front first (the transformer when there is one)."""

    model_name: str
    policy: RolloutPolicy
    components: dict[str, ComponentPlan]

    @property
    def front(self) -> str:
        """The component the service's own host and name reach."""
        return next(iter(self.components))


def parse(
    text: str, max_documents: int = MAX_DOCUMENTS, documents_setting: str = "", base: Path | None = None
) -> list[Document]:
    """Validate every document of a YAML (or JSON) text, of at most `max_documents` (`documents_setting` names what
    raises it), its relative paths read from `base` when given (the manifest file's directory); raises SpecError
    naming the problems."""
    return [
        Document(m.kind, m.namespace, m.name, m.to_manifest(), m)
        for m in parse_manifests(text, max_documents, documents_setting, base)
    ]


def unserved_fields(manifest: dict[str, Any]) -> list[str]:
    """Valid parts of a spec that this release validates but cannot serve yet (they change what clients get)."""
    spec = manifest["spec"]
    return [f"{c}.containers" for c in (TRANSFORMER, EXPLAINER) if (spec.get(c) or {}).get("containers")]


def service_plan(manifest: dict[str, Any], domain: str) -> ServicePlan:
    """Plan every component of an InferenceService; `domain` makes the predictor's host for a transformer."""
    service = parse_manifest(manifest)
    assert isinstance(service, InferenceService)
    predictor = service.spec.predictor
    components = {PREDICTOR: _component_plan(service, predictor, predictor.model_spec(), {})}
    behind = component_name(service.name, PREDICTOR)
    calls = {
        "host": f"{behind}.{service.namespace}.{domain}",
        "service": f"{service.namespace}/{behind}",
        "model": service.model_name,
        "protocol": predictor.model_spec().protocol_version,
        "timeout_s": float(predictor.timeout),
    }
    transformer = service.spec.transformer
    if transformer is not None:
        model = transformer.model
        assert model is not None, "validation leaves a served transformer its model"
        components = {TRANSFORMER: _component_plan(service, transformer, model, {"predictor": calls}), **components}
    explainer = service.spec.explainer
    if explainer is not None:
        model = explainer.model or _explainer_model(explainer, predictor.model_spec())
        components[EXPLAINER] = _component_plan(service, explainer, model, {"predictor": calls})
    return ServicePlan(service.model_name, service.rollout_policy, components)


def _explainer_model(explainer: ExplainerSpec, predictor: ModelSpec) -> ModelSpec:
    """The model a replica of a built-in explainer runs: `EXPLAINER_CLASS`, told its method in its environment."""
    method = explainer.method
    assert method is not None, "validation gives an explainer art, shap, containers or model"
    config: dict[str, Any] = {
        "method": "art" if explainer.art is not None else "shap",
        **method.model_dump(mode="json", exclude_none=True, exclude=_CONTAINER_FIELDS),
    }
    if explainer.shap is not None and not predictor.names_class:
        config["model"] = {"storageUri": predictor.storage_uri, "format": predictor.model_format.name}
    env = [*method.env, EnvVar(name=EXPLAINER_CONFIG_ENV, value=json.dumps(config, sort_keys=True))]
    return ModelSpec(
        model_format=ModelFormat(name=CUSTOM_FORMAT),
        storage_uri=EXPLAINER_CLASS,
        env=env,
        args=method.args,
        resources=method.resources,
    )


def component_name(service: str, component: str) -> str:
    """The name a component behind the front one answers at on the gateway: `{service}-{component}` (its host is
    `{service}-{component}.{namespace}.{domain}`)."""
    return f"{service}-{component}"


def identity_env(namespace: str, service: str, component: str, revision: str) -> dict[str, str]:
    """The environment that tells a replica what it serves (`wharf.server.settings`: its spans' resource)."""
    return {"WHARF_SERVICE": f"{namespace}/{service}", "WHARF_COMPONENT": component, "WHARF_REVISION": revision}


def predictor_env(calls: dict[str, Any], url: str, grpc_target: str, caller: str) -> dict[str, str]:
    """The environment that tells a transformer where its predictor is (`wharf.transformer.PredictorSettings`):
    `calls` as a transformer's revision stores it, the gateway's addresses, and who it is to the gateway (`caller`:
    `namespace/service/component`, which the gateway counts its calls under)."""
    return {
        "WHARF_PREDICTOR_CALLER": caller,
        "WHARF_PREDICTOR_URL": url,
        "WHARF_PREDICTOR_GRPC_TARGET": grpc_target,
        "WHARF_PREDICTOR_HOST": str(calls["host"]),
        "WHARF_PREDICTOR_SERVICE": str(calls["service"]),
        "WHARF_PREDICTOR_MODEL": str(calls["model"]),
        "WHARF_PREDICTOR_PROTOCOL": str(calls["protocol"]),
        "WHARF_PREDICTOR_TIMEOUT_S": str(calls["timeout_s"]),
    }


def _component_plan(
    service: InferenceService, component: ComponentSpec, model: ModelSpec, extra: dict[str, Any]
) -> ComponentPlan:
    """A component's plan, running `model`; `extra` joins its replica spec and its fingerprint (a transformer's
    predictor calls: a predictor answering another protocol, or slower, needs a new transformer revision). A model
    made from more than the component (a built-in explainer's, which names the predictor's artifact) joins the
    fingerprint too."""
    extra = {**extra, **_node_selection(service, component)}
    derived = {**extra, "model": model.model_dump(mode="json")}
    env = {var.name: var.value for var in model.env}
    env["WHARF_REQUEST_TIMEOUT_S"] = str(component.timeout)
    if component.batcher is not None:
        env["WHARF_MAX_BATCH_SIZE"] = str(component.batcher.max_batch_size)
        env["WHARF_MAX_BATCH_LATENCY_MS"] = str(component.batcher.max_latency)
    if model.is_multi_model:
        try:
            budget = replica_budget(model.resources.limits.get("memory"), env)
        except ValueError as e:
            where = f"InferenceService {service.namespace}/{service.name}"
            raise ConfigurationError(f"{where}: {BUDGET_ENV}: {e}") from None
        if budget is not None:
            env[BUDGET_ENV] = str(budget)  # what each replica's TrainedModels may take
    replica = {
        "model_name": service.model_name,
        "model_uri": model.storage_uri or "",  # none: a multi-model server (an empty repository)
        "runtime": None if model.is_custom or model.is_multi_model else model.model_format.name,
        "env": env,
        "args": list(model.args),
        "resources": model.resources.model_dump(mode="json"),
        **extra,
    }
    return ComponentPlan(
        fingerprint=_fingerprint(component_fingerprint(component), extra if model is component.model else derived),
        replica=replica,
        canary_percent=component.canary_traffic_percent,
        timeout_s=float(component.timeout),
        container_concurrency=component.container_concurrency,
        scaling=_scaling(service, component),
        logger=_logger(component.logger),
    )


def _node_selection(service: InferenceService, component: ComponentSpec) -> dict[str, Any]:
    """The component's `node_selector` and `tolerations` (the Ray backend's node labels: `NodeSelection`), each only
    when set, so that a revision without them keeps the fingerprint it had before they joined the replica spec."""
    try:
        NodeSelection.from_kubernetes(component.node_selector, component.tolerations)
    except ValueError as e:
        raise ConfigurationError(f"InferenceService {service.namespace}/{service.name}: {e}") from None
    chosen = {"node_selector": component.node_selector, "tolerations": component.tolerations}
    return {name: value for name, value in chosen.items() if value}


def _logger(logger: LoggerSpec | None) -> dict[str, Any] | None:
    if logger is None:
        return None
    return {"url": logger.url, "mode": logger.mode, "metadata_headers": list(logger.metadata_headers)}


def _fingerprint(component: str, extra: dict[str, Any]) -> str:
    if not extra:
        return component
    canonical = json.dumps(extra, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{component}:{canonical}".encode()).hexdigest()


def _scaling(service: InferenceService, component: ComponentSpec) -> ScalingPolicy:
    """A component's autoscaling policy: its spec fields, else the service's Knative annotations, else Knative's
    defaults.

    minReplicas and scaleMetric always have a value after defaulting; an annotation setting them wins over a
    value the user may not have written (KServe, too, turns these fields into the same annotations).
    """
    annotations = service.metadata.annotations
    knative = {key.removeprefix(KNATIVE_PREFIX) for key in annotations if key.startswith(KNATIVE_PREFIX)}
    try:
        return policy_from_annotations(
            {k: v for k, v in annotations.items() if k.startswith(KNATIVE_PREFIX)},
            min_replicas=None if knative & {"min-scale", "minScale"} else component.min_replicas,
            max_replicas=component.max_replicas or None,
            scale_target=component.scale_target,
            scale_metric=None if "metric" in knative else component.scale_metric,
            container_concurrency=component.container_concurrency,
        )
    except ValueError as e:
        raise ConfigurationError(f"InferenceService {service.namespace}/{service.name}: {e}") from None
