"""The XGBoost runtime: a plain Booster and an XGBClassifier, trained here and served by one `wharf serve`.
(KServe's file names and default answers: test_kserve_artifacts.py.)"""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import xgboost
from sklearn.datasets import load_iris, make_regression

from tests.integration.conftest import ROOT, served_client
from tests.integration.runtime_checks import assert_bad_input, assert_serves, request, rows_request, tensor

IRIS = load_iris().data[[0, 60, 120]].astype(np.float32)
FEATURES, TARGETS = make_regression(n_samples=200, n_features=5, random_state=0)
ROWS = FEATURES[:4]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`booster/xgboost-regression.json` (xgboost.train) and `classifier/model.ubj` (the example's XGBClassifier)."""
    root = tmp_path_factory.mktemp("xgboost")
    (root / "booster").mkdir()
    (root / "classifier").mkdir()
    booster = xgboost.train({"max_depth": 3}, xgboost.DMatrix(FEATURES, TARGETS), num_boost_round=10)
    booster.save_model(root / "booster/xgboost-regression.json")
    runpy.run_path(str(ROOT / "examples/xgboost/train.py"))["main"](str(root / "classifier/model.ubj"))
    return root


@pytest.fixture(scope="module")
def client(repository: Path) -> Iterator[httpx.Client]:
    with served_client(str(repository), timeout=10) as c:
        yield c


def _classifier(repository: Path) -> xgboost.XGBClassifier:
    classifier = xgboost.XGBClassifier()
    classifier.load_model(repository / "classifier/model.ubj")
    return classifier


def test_metadata(client: httpx.Client) -> None:
    booster = client.get("/v2/models/booster").json()
    assert booster["platform"] == "xgboost"
    assert booster["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 5]}]
    assert booster["outputs"] == [{"name": "predict", "datatype": "FP32", "shape": [-1]}]
    assert client.get("/v2/models/classifier").json()["outputs"] == [
        {"name": "predict", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "predict_proba", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "predict_class", "datatype": "INT64", "shape": [-1]},
    ]


def test_booster_predicts_what_booster_predict_does(client: httpx.Client, repository: Path) -> None:
    booster = xgboost.Booster(model_file=repository / "booster/xgboost-regression.json")
    expected = booster.predict(xgboost.DMatrix(ROWS))
    answer = client.post("/v2/models/booster/infer", json=rows_request(ROWS))
    assert answer.status_code == 200, answer.text
    out = answer.json()["outputs"][0]
    assert (out["name"], out["datatype"], out["shape"]) == ("predict", "FP32", [4])
    assert np.allclose(out["data"], expected)
    v1 = client.post("/v1/models/booster:predict", json={"instances": ROWS.tolist()}).json()
    assert np.allclose(v1["predictions"], expected)


def test_classifier_answers_booster_predict_and_offers_the_wrappers_probabilities_and_classes(
    client: httpx.Client, repository: Path
) -> None:
    """`predict` is what KServe's XGBoost server answers (Booster.predict); the wrapper's answers are named."""
    classifier = _classifier(repository)
    booster = xgboost.Booster(model_file=repository / "classifier/model.ubj")

    def outputs(**extra: Any) -> list[dict[str, Any]]:  # as sent, with their names, datatypes and shapes
        answer = client.post("/v2/models/classifier/infer", json=rows_request(IRIS, **extra))
        assert answer.status_code == 200, answer.text
        return answer.json()["outputs"]

    [default] = outputs()
    assert (default["name"], default["datatype"], default["shape"]) == ("predict", "FP32", [3, 3])
    assert np.allclose(default["data"], booster.predict(xgboost.DMatrix(IRIS)).reshape(-1))
    by_parameter = outputs(parameters={"method": "predict_proba"})
    both = outputs(outputs=[{"name": "predict_proba"}, {"name": "predict_class"}])
    for probabilities in (by_parameter[0], both[0]):
        assert probabilities["name"] == "predict_proba" and probabilities["shape"] == [3, 3]
        assert np.allclose(probabilities["data"], classifier.predict_proba(IRIS).reshape(-1))
    assert both[1] == {
        "name": "predict_class", "datatype": "INT64", "shape": [3], "data": classifier.predict(IRIS).tolist()
    }
    v1 = client.post("/v1/models/classifier:predict", json={"instances": IRIS.tolist()}).json()
    assert np.allclose(v1["predictions"], booster.predict(xgboost.DMatrix(IRIS)))


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        ("booster", rows_request(ROWS[:, :3]), "takes 5 features per row, got 3"),
        ("booster", rows_request(ROWS.reshape(2, 2, 5)), "takes a 2-D input [rows, features], got shape [2, 2, 5]"),
        ("booster", request(tensor("x", np.array(["a"]))), "numeric input"),
        ("classifier", rows_request(IRIS, parameters={"method": "apply"}), "no method 'apply'"),
    ],
)
def test_bad_input_is_a_400_and_the_model_keeps_serving(
    client: httpx.Client, model: str, body: dict, message: str
) -> None:
    assert_bad_input(client, model, body, message)
    assert_serves(client, "booster", rows_request(ROWS))
