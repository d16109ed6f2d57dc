"""Deploying a stored model as an InferenceService and rolling it out, the work behind the pipeline components: apply
a service for the model (as a canary when asked), wait until its newest revision is ready, then promote that
revision or roll it back on a metric.

A client of the control API through Wharf's SDK (`wharf.Wharf`): without a `control_url` it finds the daemon
and its token as the `wharf` CLI does (WHARF_CONTROL_URL and WHARF_TOKEN, else WHARF_HOME's `daemon.json`), so no
token ever appears in a pipeline's spec.
"""

from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from wharf.sdk import NotReady, Resource, Wharf
from wharf.errors import ConfigurationError, ModelLoadError, NotFound

if TYPE_CHECKING:
    from wharf.control.spec import InferenceService

NO_CANARY = -1  # what a pipeline parameter says for "no canaryTrafficPercent" (KFP parameters have no None)
Verdict = Literal["promoted", "rolled back"]


@dataclass(frozen=True)
class Deployed:
    """The service's revision that serves the model now, and the service's URL (`http://NAME.NAMESPACE.DOMAIN`)."""

    revision: str
    url: str


def service_manifest(
    name: str,
    storage_uri: str,
    model_format: str = "sklearn",
    *,
    namespace: str = "default",
    canary_traffic_percent: int = NO_CANARY,
    protocol_version: str = "v1",
) -> dict[str, Any]:
    """An InferenceService whose predictor serves the model at `storage_uri`; with `canary_traffic_percent` (1 to
    100) its new revision takes that share of the traffic and the revision rolled out before keeps the rest."""
    if canary_traffic_percent != NO_CANARY and not 1 <= canary_traffic_percent <= 100:
        raise ConfigurationError(
            f"canary_traffic_percent: {canary_traffic_percent} is not a canary; give 1 to 100, or {NO_CANARY} for none"
        )
    predictor: dict[str, Any] = {}
    if canary_traffic_percent != NO_CANARY:
        predictor["canaryTrafficPercent"] = canary_traffic_percent
    predictor["model"] = {
        "modelFormat": {"name": model_format},
        "protocolVersion": protocol_version,
        "storageUri": storage_uri,
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"predictor": predictor},
    }


def rolled_out(service: Resource[InferenceService]) -> Deployed | None:
    """The service's newest predictor revision once it is ready for the spec the service has now, None while it
    starts; ModelLoadError when a replica of it failed before serving (a model that does not load fails the same way
    on every restart, and a pipeline should hear of it now, not at its timeout)."""
    predictor = service.status.components.get("predictor")
    if not service.current or predictor is None:
        return None  # the status still describes an older spec, or none yet
    latest = predictor.latest_created_revision
    if latest and predictor.latest_ready_revision == latest:
        return Deployed(latest, service.url or predictor.url or "")
    for replica in service.replicas:
        if replica.revision == latest and replica.last_error and not replica.ready:
            raise ModelLoadError(f"revision {latest} failed to start: {replica.last_error}")
    return None


def deploy(manifest: dict[str, Any], *, timeout_s: float = 300.0, control_url: str | None = None) -> Deployed:
    """Apply `manifest` (one InferenceService) and wait, within `timeout_s`, until its newest revision is ready
    (NotReady, with the Ready condition's message, if it is not by then)."""
    metadata = manifest["metadata"]
    namespace, name = metadata.get("namespace", "default"), metadata["name"]
    with Wharf(control_url or None) as wharf:
        wharf.apply(manifest)
        last = None
        with closing(wharf.watch(namespace, name, timeout_s=timeout_s)) as events:
            for event in events:
                if event.type == "DELETED":
                    raise NotFound(f"InferenceService {namespace}/{name} was deleted while it rolled out")
                last = event.resource
                if (done := rolled_out(last)) is not None:
                    return done
        raise NotReady(f"InferenceService {namespace}/{name}", timeout_s, last)


def passes(metric: float, threshold: float) -> bool:
    """Whether `metric` meets `threshold` (a metric that is not a number never does)."""
    return not math.isnan(metric) and metric >= threshold


def gate(
    name: str,
    revision: str,
    metric: float,
    threshold: float,
    *,
    namespace: str = "default",
    control_url: str | None = None,
) -> Verdict:
    """Promote the service's `revision` (all traffic to it) when `metric` meets `threshold`, else roll it back (its
    traffic to the revision rolled out before it). Refused when `revision` is no longer the service's newest: the
    verdict is about the revision that was measured, never one deployed since."""
    with Wharf(control_url or None) as wharf:
        predictor = wharf.get(name, namespace).status.components.get("predictor")
        latest = predictor.latest_created_revision if predictor else None
        if latest != revision:
            raise ConfigurationError(
                f"revision: {revision} is no longer the newest of {namespace}/{name} ({latest} is); nothing changed"
            )
        if passes(metric, threshold):
            wharf.promote(name, namespace)
            return "promoted"
        wharf.rollback(name, namespace)
        return "rolled back"
