"""`spec.explainer`: which sections validate, what an explainer's revision runs, and when it needs a new one."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from wharf.control.plan import (
    EXPLAINER,
    EXPLAINER_CLASS,
    EXPLAINER_CONFIG_ENV,
    PREDICTOR,
    TRANSFORMER,
    service_plan,
    unserved_fields,
)
from wharf.control.spec import SpecError, parse_manifest

SERVICE = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: income, namespace: shop}
spec:
  predictor:
    sklearn: {storageUri: /models/forest.joblib}
"""


def manifest(explainer: dict[str, Any], predictor: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    document = yaml.safe_load(SERVICE)
    document["spec"]["explainer"] = explainer
    if predictor is not None:
        document["spec"]["predictor"] = predictor
    document["spec"].update(spec)
    return document


def problems(document: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as raised:
        parse_manifest(document)
    return str(raised.value)


def config(document: dict[str, Any]) -> dict[str, Any]:
    replica = service_plan(parse_manifest(document).to_manifest(), "example.com").components[EXPLAINER].replica
    return json.loads(replica["env"][EXPLAINER_CONFIG_ENV])


def test_a_shap_explainer_runs_the_built_in_class_told_its_method_and_the_predictors_artifact() -> None:
    shap = {"storageUri": "/data/bg.csv", "nSamples": 64, "env": [{"name": "OMP_NUM_THREADS", "value": "1"}]}
    plan = service_plan(parse_manifest(manifest({"shap": shap, "minReplicas": 0})).to_manifest(), "example.com")
    assert list(plan.components) == [PREDICTOR, EXPLAINER] and plan.front == PREDICTOR
    explainer = plan.components[EXPLAINER]
    replica = explainer.replica
    assert (replica["model_uri"], replica["runtime"], replica["model_name"]) == (EXPLAINER_CLASS, None, "income")
    assert replica["env"]["OMP_NUM_THREADS"] == "1"
    assert json.loads(replica["env"][EXPLAINER_CONFIG_ENV]) == {
        "method": "shap",
        "type": "Auto",
        "storageUri": "/data/bg.csv",
        "sampleSize": 100,
        "nSamples": 64,
        "seed": 0,
        "model": {"storageUri": "/models/forest.joblib", "format": "sklearn"},
    }
    # It calls the predictor through the gateway, as a transformer does, and scales on its own.
    assert replica["predictor"]["host"] == "income-predictor.shop.example.com"
    assert explainer.scaling.min_scale == 0


def test_an_art_explainer_takes_kserves_section_unchanged() -> None:
    art = {"type": "SquareAttack", "config": {"nb_classes": "3", "max_iter": "20"}}
    assert config(manifest({"art": art})) == {"method": "art", "type": "SquareAttack", "config": art["config"]}


def test_an_explainer_beside_a_transformer_calls_the_predictor() -> None:
    transformer = {"model": {"modelFormat": {"name": "custom"}, "storageUri": "scaler:Scale"}}
    document = manifest({"shap": {"type": "Kernel", "storageUri": "/data/bg.npy"}}, transformer=transformer)
    plan = service_plan(parse_manifest(document).to_manifest(), "example.com")
    assert list(plan.components) == [TRANSFORMER, PREDICTOR, EXPLAINER] and plan.front == TRANSFORMER
    assert plan.components[EXPLAINER].replica["predictor"]["service"] == "shop/income-predictor"


def test_a_new_predictor_artifact_makes_a_new_tree_explainer_revision() -> None:
    first = service_plan(parse_manifest(manifest({"shap": {}})).to_manifest(), "example.com")
    moved = manifest({"shap": {}}, predictor={"sklearn": {"storageUri": "/models/forest-2.joblib"}})
    second = service_plan(parse_manifest(moved).to_manifest(), "example.com")
    assert first.components[EXPLAINER].fingerprint != second.components[EXPLAINER].fingerprint
    rescaled = service_plan(parse_manifest(manifest({"shap": {}, "maxReplicas": 3})).to_manifest(), "example.com")
    assert rescaled.components[EXPLAINER].fingerprint == first.components[EXPLAINER].fingerprint


@pytest.mark.parametrize(
    "explainer, predictor, expected",
    [
        ({}, None, "spec.explainer: needs exactly one of art, shap, containers or model"),
        ({"shap": {}, "art": {"type": "SquareAttack"}}, None, "given: art, shap"),
        ({"art": {"type": "FGSM"}}, None, "spec.explainer.art.type: must be 'SquareAttack' or 'HopSkipJump'"),
        ({"art": {"type": "SquareAttack", "storageUri": "/x"}}, None, "loads no artifact"),
        ({"shap": {"type": "Kernel"}}, None, "spec.explainer.shap.storageUri: required for Kernel SHAP"),
        ({"shap": {"nSamples": 0}}, None, "spec.explainer.shap.nSamples"),
        ({"shap": {"featureNames": ["a", "a"]}}, None, "names must be unique"),
        ({"shap": {"storageUri": "ftp://x/bg.csv"}}, None, "spec.explainer.shap.storageUri: unsupported storage"),
        ({"shap": {"method": "tree"}}, None, "spec.explainer.shap.method: unknown field"),
        (
            {"shap": {"type": "Tree"}},
            {"model": {"modelFormat": {"name": "onnx"}, "storageUri": "/m.onnx"}},
            "spec.explainer.shap.type: Tree explanations read the predictor's artifact",
        ),
        (
            {"shap": {}},
            {"model": {"modelFormat": {"name": "custom"}, "storageUri": "fraud:Model"}},
            "spec.explainer.shap.storageUri: required here",
        ),
    ],
)
def test_bad_explainers_are_refused_naming_the_field(
    explainer: dict[str, Any], predictor: dict[str, Any] | None, expected: str
) -> None:
    assert expected in problems(manifest(explainer, predictor))


def test_an_explainer_container_image_is_valid_but_not_served() -> None:
    document = manifest({"containers": [{"image": "kserve/alibi-explainer"}]})
    assert unserved_fields(parse_manifest(document).to_manifest()) == ["explainer.containers"]
    assert unserved_fields(parse_manifest(manifest({"shap": {}})).to_manifest()) == []
