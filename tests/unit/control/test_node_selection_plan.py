"""A component's nodeSelector and tolerations in its revision's plan: they join its replica spec and fingerprint only
when set (revisions of specs without them keep their fingerprint), and a wrong toleration is refused at apply."""

from __future__ import annotations

import pytest
import yaml

from wharf.control.plan import PREDICTOR, component_fingerprint, service_plan
from wharf.control.spec import parse_manifest
from wharf.errors import ConfigurationError

SERVICE = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: iris, namespace: shop}
spec:
  predictor:
    model:
      modelFormat: {name: sklearn}
      storageUri: models/iris.joblib
"""
PLACED = SERVICE.replace(
    "  predictor:\n",
    "  predictor:\n    nodeSelector: {disk: ssd}\n    tolerations: [{key: gpu, operator: Exists}]\n",
)


def _plan(text: str):  # noqa: ANN202 - the predictor's ComponentPlan
    resource = parse_manifest(yaml.safe_load(text))
    return service_plan(resource.to_manifest(), "example.com").components[PREDICTOR], resource


def test_a_component_without_node_selection_keeps_the_fingerprint_it_had() -> None:
    plain, resource = _plan(SERVICE)
    assert plain.fingerprint == component_fingerprint(resource.spec.predictor)  # as before node selection
    assert "node_selector" not in plain.replica and "tolerations" not in plain.replica


def test_node_selection_joins_the_replica_spec_and_makes_a_new_revision() -> None:
    placed, _ = _plan(PLACED)
    assert placed.replica["node_selector"] == {"disk": "ssd"}
    assert placed.replica["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert placed.fingerprint != _plan(SERVICE)[0].fingerprint


def test_a_wrong_toleration_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"tolerations\[0\].operator"):
        _plan(PLACED.replace("operator: Exists", "operator: Lt"))
