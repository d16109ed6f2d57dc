"""The LightGBM runtime (multiclass, binary and regression Boosters) and the sklearn wrapper, trained here and
served by one `wharf serve`."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import lightgbm
import numpy as np
import pytest
from sklearn.datasets import load_iris

from tests.integration.conftest import ROOT, served_client
from tests.integration.runtime_checks import assert_bad_input, assert_serves, infer, rows_request

FEATURES, LABELS = load_iris(return_X_y=True)
ROWS = FEATURES[[0, 60, 120, 149]]
QUIET = {"verbose": -1, "num_leaves": 7}


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """multiclass/model.lgb (the example), binary/lightgbm-binary.txt, regression/model.lgbm, wrapper/model.joblib."""
    root = tmp_path_factory.mktemp("lightgbm")
    for name in ("multiclass", "binary", "regression", "wrapper"):
        (root / name).mkdir()
    runpy.run_path(str(ROOT / "examples/lightgbm/train.py"))["main"](str(root / "multiclass/model.lgb"))
    binary = lightgbm.train({"objective": "binary", **QUIET}, lightgbm.Dataset(FEATURES, LABELS == 2), 10)
    binary.save_model(root / "binary/lightgbm-binary.txt")
    data = lightgbm.Dataset(FEATURES[:, :3], FEATURES[:, 3])
    regression = lightgbm.train({"objective": "regression", **QUIET}, data, 10)
    regression.save_model(root / "regression/model.lgbm")
    joblib.dump(lightgbm.LGBMClassifier(n_estimators=10, **QUIET).fit(FEATURES, LABELS), root / "wrapper/model.joblib")
    return root


@pytest.fixture(scope="module")
def client(repository: Path) -> Iterator[httpx.Client]:
    with served_client(str(repository), timeout=10) as c:
        yield c


def test_metadata(client: httpx.Client) -> None:
    multiclass = client.get("/v2/models/multiclass").json()
    assert multiclass["platform"] == "lightgbm"
    assert multiclass["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert multiclass["outputs"] == [
        {"name": "predict", "datatype": "FP64", "shape": [-1, 3]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        {"name": "predict_class", "datatype": "INT64", "shape": [-1]},
    ]
    binary = client.get("/v2/models/binary").json()["outputs"]
    assert [o["shape"] for o in binary] == [[-1], [-1, 2], [-1]]
    regression = client.get("/v2/models/regression").json()
    assert regression["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]


@pytest.mark.parametrize("model", ["multiclass", "binary"])
def test_classifier_probabilities_and_classes(client: httpx.Client, repository: Path, model: str) -> None:
    """`predict` is Booster.predict (KServe's answer); `predict_proba` has a column per class, `predict_class`."""
    booster = lightgbm.Booster(model_file=next((repository / model).iterdir()))
    predicted = booster.predict(ROWS)
    probabilities = np.column_stack([1 - predicted, predicted]) if predicted.ndim == 1 else predicted
    wanted = [{"name": "predict"}, {"name": "predict_proba"}, {"name": "predict_class"}]
    outputs = infer(client, model, rows_request(ROWS, outputs=wanted))
    assert np.allclose(outputs["predict"], predicted)
    assert np.allclose(outputs["predict_proba"], probabilities)
    assert outputs["predict_class"].tolist() == probabilities.argmax(axis=1).tolist()
    by_parameter = infer(client, model, rows_request(ROWS, parameters={"method": "predict_proba"}))
    assert np.allclose(by_parameter["predict_proba"], probabilities)
    v1 = client.post(f"/v1/models/{model}:predict", json={"instances": ROWS.tolist()}).json()
    assert np.allclose(v1["predictions"], predicted)


def test_binary_classes_follow_the_one_half_threshold(client: httpx.Client, repository: Path) -> None:
    positive = lightgbm.Booster(model_file=repository / "binary/lightgbm-binary.txt").predict(FEATURES)
    classes = infer(client, "binary", rows_request(FEATURES, parameters={"method": "predict_class"}))["predict_class"]
    assert classes.tolist() == (positive > 0.5).astype(int).tolist()


def test_regression(client: httpx.Client, repository: Path) -> None:
    expected = lightgbm.Booster(model_file=repository / "regression/model.lgbm").predict(ROWS[:, :3])
    assert np.allclose(infer(client, "regression", rows_request(ROWS[:, :3]))["predict"], expected)


def test_sklearn_wrapper_is_served_by_the_sklearn_runtime(client: httpx.Client, repository: Path) -> None:
    estimator = joblib.load(repository / "wrapper/model.joblib")
    assert client.get("/v2/models/wrapper").json()["platform"] == "sklearn"
    outputs = infer(client, "wrapper", rows_request(ROWS, outputs=[{"name": "predict"}, {"name": "predict_proba"}]))
    assert outputs["predict"].tolist() == estimator.predict(ROWS).tolist()
    assert np.allclose(outputs["predict_proba"], estimator.predict_proba(ROWS))


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        ("multiclass", rows_request(ROWS[:, :3]), "takes 4 features per row, got 3"),
        ("regression", rows_request(ROWS), "takes 3 features per row, got 4"),
        ("multiclass", rows_request(ROWS.reshape(1, 4, 4)), "takes a 2-D input [rows, features], got shape [1, 4, 4]"),
        ("regression", rows_request(ROWS[:, :3], parameters={"method": "predict_proba"}), "no method 'predict_proba'"),
    ],
)
def test_bad_input_is_a_400_and_the_model_keeps_serving(
    client: httpx.Client, model: str, body: dict, message: str
) -> None:
    assert_bad_input(client, model, body, message)
    assert_serves(client, "multiclass", rows_request(ROWS))
