"""The rollout steps' decisions: the manifest a model is deployed with, when its new revision counts as rolled out,
and when a metric passes."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.sdk import Resource
from wharf.sdk.views import resource
from wharf.control.spec import InferenceService, parse_manifest
from wharf.errors import ConfigurationError, ModelLoadError
from wharf.kfp.rollout import NO_CANARY, Deployed, passes, rolled_out, service_manifest


def test_a_model_is_deployed_as_an_inference_service_the_control_plane_accepts() -> None:
    manifest = service_manifest("iris", "/srv/models/iris/0123/model.joblib", namespace="ml", canary_traffic_percent=20)
    assert manifest["metadata"] == {"name": "iris", "namespace": "ml"}
    assert manifest["spec"]["predictor"] == {
        "canaryTrafficPercent": 20,
        "model": {
            "modelFormat": {"name": "sklearn"},
            "protocolVersion": "v1",
            "storageUri": "/srv/models/iris/0123/model.joblib",
        },
    }
    parse_manifest(manifest)  # the control plane's own validation
    assert "canaryTrafficPercent" not in service_manifest("iris", "s3://b/m.bst", "xgboost")["spec"]["predictor"]


@pytest.mark.parametrize("percent", [0, 101, -2])
def test_a_share_that_is_no_canary_is_refused(percent: int) -> None:
    # 0 would roll the new revision back at once: the deployment would wait for a revision that never takes traffic
    with pytest.raises(ConfigurationError, match=f"canary_traffic_percent: {percent} .*-1 for none"):
        service_manifest("iris", "/m.joblib", canary_traffic_percent=percent)
    assert NO_CANARY == -1


def _service(
    generation: int = 2,
    observed: int = 2,
    created: str = "iris-predictor-00002",
    ready: str | None = None,
    **status: Any,
) -> Resource[InferenceService]:
    """The iris service as the control API shows it, through the SDK's typed view."""
    document = service_manifest("iris", "/m.joblib", canary_traffic_percent=20)
    document["metadata"]["generation"] = generation
    document["status"] = {
        "observedGeneration": observed,
        "url": "http://iris.default.example.com",
        "components": {"predictor": {"latestCreatedRevision": created, "latestReadyRevision": ready}},
        **status,
    }
    return resource(document, InferenceService)


def test_the_new_revision_is_rolled_out_once_ready_for_the_current_spec() -> None:
    assert rolled_out(_service(ready="iris-predictor-00001")) is None  # still starting
    assert rolled_out(_service(generation=3, ready="iris-predictor-00002")) is None  # an older spec's status
    unreported = resource(service_manifest("iris", "/m.joblib"), InferenceService)
    assert rolled_out(unreported) is None  # no status yet
    done = rolled_out(_service(ready="iris-predictor-00002"))
    assert done == Deployed("iris-predictor-00002", "http://iris.default.example.com")


def test_a_revision_whose_replica_fails_to_start_fails_the_deployment_at_once() -> None:
    replicas = [
        {"id": "a", "revision": "iris-predictor-00001", "ready": True, "last_error": None},
        {
            "id": "b",
            "revision": "iris-predictor-00002",
            "ready": False,
            "last_error": "exited before serving: bad pickle",
        },
    ]
    with pytest.raises(ModelLoadError, match="revision iris-predictor-00002 failed to start: .*bad pickle"):
        rolled_out(_service(ready="iris-predictor-00001", replicaStates=replicas))
    old_failure = [{"id": "a", "revision": "iris-predictor-00001", "ready": False, "last_error": "killed"}]
    assert rolled_out(_service(ready="iris-predictor-00001", replicaStates=old_failure)) is None


def test_a_metric_passes_when_it_meets_the_threshold() -> None:
    assert passes(0.9, 0.9) and passes(1.0, 0.9)
    assert not passes(0.89, 0.9)
    assert not passes(float("nan"), 0.0)
