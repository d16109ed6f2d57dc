"""Wharf's stored InferenceServices and InferenceGraphs as a KServe cluster runs them: pure functions from the
control API's documents to KServe's manifests, each with warnings naming what did not carry over.

A document is read as `wharf apply` reads one (`parse_manifest`: validated, defaults filled in, shorthands such as
`sklearn:` turned into `model`), and written back in KServe's field names without what the server keeps (`status`,
`uid`, `resourceVersion`, ...). The rest is KServe's own spec, so it goes over unchanged, except:

- Wharf's annotations (`serving.wharf.dev/...`: shadow traffic, automatic rollback, the bandit rollout, API keys)
  have no KServe equivalent, and are dropped, each with a warning saying why.
- The predictor runs on Wharf's serving runtime (`wharf.export.runtime`): `spec.predictor.model.runtime` names it
  (a KServe runtime named there before is replaced, with a warning). A `grpc-v2` predictor gets the `h2c` port
  8081, as KServe's documentation asks of a gRPC predictor.
- A model file on this machine (a path, `file://`) or in `az://` (KServe reads Azure Blob Storage by its https
  URL) is exported as it is, with a warning: the cluster cannot read it there. So is a payload logger's or a graph
  step's URL on this machine (localhost).
- What KServe cannot run is refused (`NotExportable`), naming the field: a custom Python class as a component
  (on KServe, a class runs in an image of one's own, in `containers`), a multi-model server, Wharf's SHAP
  explainer, and a graph's Bandit router. A graph's pod settings that KServe's InferenceGraph lacks are dropped with a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wharf.control.spec import (
    API_KEY_SHA256,
    AUTO_ROLLBACK_ERROR_RATE,
    AUTO_ROLLBACK_P99_MS,
    SHADOW_PERCENT,
    WHARF_PREFIX,
    InferenceGraph,
    InferenceService,
    parse_manifest,
)
from wharf.control.spec.common import BANDIT_CONFIDENCE, BANDIT_MIN_REWARDS, ROLLOUT, format_path
from wharf.errors import ConfigurationError
from wharf.export.runtime import GRPC_PORT, ServingRuntime, serving_runtime
from wharf.storage.uri import scheme

_ROLLBACK = "KServe does not roll a canary back by itself: watch the canary's metrics and set canaryTrafficPercent"
_BANDIT = "KServe moves a canary's traffic by canaryTrafficPercent only, with no rollout that learns from rewards"
#: Why each of Wharf's annotations is dropped (one not here: `_EXTENSION`).
_DROPPED = {
    SHADOW_PERCENT: "KServe sends no copy of a service's traffic to its canary",
    AUTO_ROLLBACK_ERROR_RATE: _ROLLBACK,
    AUTO_ROLLBACK_P99_MS: _ROLLBACK,
    API_KEY_SHA256: "KServe asks no API keys: put the service behind the authentication of the cluster's ingress",
    ROLLOUT: _BANDIT,
    BANDIT_CONFIDENCE: _BANDIT,
    BANDIT_MIN_REWARDS: _BANDIT,
}
_EXTENSION = "a Wharf extension KServe does not have"
#: The fields of KServe's InferenceGraph spec (Wharf's also takes every pod setting a component does).
_GRAPH_FIELDS = frozenset(
    {
        "nodes", "resources", "timeout", "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "affinity",
        "nodeName", "nodeSelector", "serviceAccountName", "tolerations", "routerTimeouts",
    }
)  # fmt: skip
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class NotExportable(ConfigurationError):
    """A resource uses something a KServe cluster cannot run; the message names the field."""


@dataclass(frozen=True, slots=True)
class Exported:
    """A KServe manifest, and what did not carry over (one line each, naming the field)."""

    manifest: dict[str, Any]
    warnings: tuple[str, ...] = ()


def services(
    documents: Iterable[Mapping[str, Any]], runtime_name: str | None = None, image: str | None = None
) -> tuple[ServingRuntime, list[Exported]]:
    """InferenceService documents (as the control API shows them) as KServe runs them, on the one runtime that
    serves their model formats (`runtime_name` and `image`: see `runtime.serving_runtime`). NotExportable names
    every refusal of every document, before anything is exported."""
    given = [_service(document) for document in documents]
    refusals = [f"{_label(service)}: {reason}" for service in given for reason in _refusals(service)]
    if refusals:
        raise NotExportable("\n".join(refusals))
    models = [service.spec.predictor.model_spec() for service in given]
    formats = [(model.model_format.name, model.model_format.version) for model in models]
    serving = serving_runtime(formats, runtime_name, image)
    return serving, [_exported(service, serving) for service in given]


def _exported(service: InferenceService, runtime: ServingRuntime) -> Exported:
    manifest = service.to_manifest()
    warnings: list[str] = []
    manifest["metadata"] = _metadata(manifest["metadata"], warnings)
    model = manifest["spec"]["predictor"]["model"]
    previous = model.get("runtime")
    if previous is not None and previous != runtime.name:
        warnings.append(f"spec.predictor.model.runtime: {previous} replaced by {runtime.name} (Wharf's model server)")
    model["runtime"] = runtime.name
    if model["protocolVersion"] == "grpc-v2":
        model["ports"] = [{"name": "h2c", "containerPort": GRPC_PORT, "protocol": "TCP"}]
    warnings += _storage_warnings(("spec", "predictor", "model", "storageUri"), model.get("storageUri"))
    for name, component in manifest["spec"].items():
        warnings += _url_warnings(("spec", name, "logger", "url"), component.get("logger", {}).get("url"))
    return Exported(_tidy(manifest), tuple(warnings))


def _refusals(service: InferenceService) -> Iterator[str]:
    """What KServe cannot run in `service`, naming each field."""
    if service.spec.predictor.model_spec().is_multi_model:
        yield (
            "spec.predictor.model: a multi-model server (no storageUri: TrainedModels name its models) needs a"
            " multi-model runtime on KServe; Wharf's serves one model: give each model an InferenceService of its own"
        )
    for name, component in service.components().items():
        model = getattr(component, "model", None)
        if model is not None and model.names_class:
            yield (
                f"spec.{name}.model: a custom Python class ({model.storage_uri}) runs on KServe in an image of your"
                f" own: build one that serves it (`wharf serve {model.storage_uri}`) and give it as the {name}'s"
                " containers"
            )
    explainer = service.spec.explainer
    if explainer is not None and explainer.shap is not None:
        yield (
            "spec.explainer.shap: Wharf's SHAP explainer has no KServe equivalent; explain with a container of your"
            " own (spec.explainer.containers), or export the service without its explainer"
        )


def inference_graph(document: Mapping[str, Any]) -> Exported:
    """An InferenceGraph document (as the control API shows it) as KServe runs it."""
    graph = parse_manifest(document)
    if not isinstance(graph, InferenceGraph):
        raise NotExportable(f"{graph.kind} {graph.name} is not an InferenceGraph")
    manifest = graph.to_manifest()
    warnings: list[str] = []
    manifest["metadata"] = _metadata(manifest["metadata"], warnings)
    spec = manifest["spec"]
    for name, node in spec["nodes"].items():
        if node["routerType"] == "Bandit":
            raise NotExportable(
                f"{format_path(('spec', 'nodes', name, 'routerType'))}: Bandit is Wharf's router; KServe's"
                " InferenceGraph has none that learns from feedback (a Splitter splits by fixed weights)"
            )
        for i, step in enumerate(node["steps"]):
            at = ("spec", "nodes", name, "steps", i, "serviceUrl")
            warnings += _url_warnings(at, step.get("serviceUrl"))
    for field in sorted(spec.keys() - _GRAPH_FIELDS):
        del spec[field]
        warnings.append(f"spec.{field} dropped: KServe's InferenceGraph has no such field")
    return Exported(_tidy(manifest), tuple(warnings))


def _service(document: Mapping[str, Any]) -> InferenceService:
    service = parse_manifest(document)
    if not isinstance(service, InferenceService):
        raise NotExportable(f"{service.kind} {service.name} is not an InferenceService")
    return service


def _label(service: InferenceService) -> str:
    """`inferenceservice/NAME`, as kubectl names it."""
    return f"{service.kind.lower()}/{service.name}"


def _metadata(metadata: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Name, namespace, labels and the annotations KServe knows; a warning for each annotation dropped."""
    annotations = {}
    for key, value in metadata.get("annotations", {}).items():
        if key.startswith(WHARF_PREFIX):
            reason = _DROPPED.get(key, _EXTENSION)
            warnings.append(f"{format_path(('metadata', 'annotations', key))} dropped: {reason}")
        else:
            annotations[key] = value
    kept = {"name": metadata["name"], "namespace": metadata["namespace"]}
    if metadata.get("labels"):
        kept["labels"] = dict(metadata["labels"])
    if annotations:
        kept["annotations"] = annotations
    return kept


def _storage_warnings(at: tuple[str, ...], uri: str | None) -> list[str]:
    found = scheme(uri or "")
    if found in ("", "file"):
        return [
            f"{format_path(at)}: {uri} is a path on this machine, which the cluster cannot read: copy the model"
            " to storage the cluster reads (s3://, gs://, pvc://, https://) and set storageUri to it"
        ]
    if found == "az":
        return [
            f"{format_path(at)}: KServe reads Azure Blob Storage by its https URL"
            " (https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH), not az://: set storageUri to it"
        ]
    return []


def _url_warnings(at: tuple[str | int, ...], url: str | None) -> list[str]:
    if url is None or urlsplit(url).hostname not in _LOCAL_HOSTS:
        return []
    return [f"{format_path(at)}: {url} is on this machine, which the cluster cannot reach"]


def _tidy(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest in the order its fields are read (apiVersion, kind, metadata, spec), less empty lists and
    mappings (`args: []`, `resources: {requests: {}}`), which mean what their absence means."""
    ordered = {key: manifest[key] for key in ("apiVersion", "kind", "metadata", "spec")}
    return _without_empty(ordered)


def _without_empty(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {key: _without_empty(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in ({}, [])}
    if isinstance(value, list):
        return [_without_empty(item) for item in value]
    return value
