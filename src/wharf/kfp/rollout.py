"""Deploying a stored model as an InferenceService and rolling it out, the work behind the pipeline components: apply
a service for the model (as a canary when asked), wait until its newest revision is ready, then promote that
revision or roll it back on a metric.

A client of the control API only: without a `control_url` it finds the daemon and its token as the `wharf` CLI does
(WHARF_CONTROL_URL and WHARF_TOKEN, else WHARF_HOME's `daemon.json`), so no token ever appears in a pipeline's spec.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Literal

from wharf.client.control import ControlClient
from wharf.errors import ConfigurationError, ModelLoadError, NotFound, RequestTimeout

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


def rolled_out(service: dict[str, Any]) -> Deployed | None:
    """The service's newest predictor revision once it is ready for the spec the service has now, None while it
    starts; ModelLoadError when a replica of it failed before serving (a model that does not load fails the same way
    on every restart, and a pipeline should hear of it now, not at its timeout)."""
    status = service.get("status") or {}
    if status.get("observedGeneration", 0) < service.get("metadata", {}).get("generation", 0):
        return None  # the status still describes an older spec
    predictor = status.get("components", {}).get("predictor", {})
    latest = predictor.get("latestCreatedRevision")
    if latest and predictor.get("latestReadyRevision") == latest:
        return Deployed(latest, status.get("url") or predictor.get("url") or "")
    for replica in status.get("replicaStates", []):
        if replica.get("revision") == latest and replica.get("last_error") and not replica.get("ready"):
            raise ModelLoadError(f"revision {latest} failed to start: {replica['last_error']}")
    return None


def deploy(manifest: dict[str, Any], *, timeout_s: float = 300.0, control_url: str | None = None) -> Deployed:
    """Apply `manifest` (one InferenceService) and wait, within `timeout_s`, until its newest revision is ready."""
    metadata = manifest["metadata"]
    namespace, name = metadata.get("namespace", "default"), metadata["name"]
    with ControlClient(control_url or None) as client:
        client.apply(json.dumps(manifest))
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] = {}
        while (left := deadline - time.monotonic()) > 0:
            with closing(client.watch("isvc", namespace, name, timeout_s=left)) as changes:
                for change, service in changes:
                    if change == "DELETED":
                        raise NotFound(f"InferenceService {namespace}/{name} was deleted while it rolled out")
                    if change != "BOOKMARK":
                        last = service
                        if (done := rolled_out(service)) is not None:
                            return done
        ready = next((c for c in last.get("status", {}).get("conditions", []) if c.get("type") == "Ready"), {})
        raise RequestTimeout(
            f"InferenceService {namespace}/{name} was not ready within {timeout_s:g} s: {ready.get('message') or '?'}"
        )


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
    with ControlClient(control_url or None) as client:
        latest = client.get("isvc", name, namespace)["status"]["components"]["predictor"]["latestCreatedRevision"]
        if latest != revision:
            raise ConfigurationError(
                f"revision: {revision} is no longer the newest of {namespace}/{name} ({latest} is); nothing changed"
            )
        if passes(metric, threshold):
            client.promote(name, namespace)
            return "promoted"
        client.rollback(name, namespace)
        return "rolled back"
