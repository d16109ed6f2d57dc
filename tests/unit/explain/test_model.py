"""The Explainer model: which method a config makes, and the load failures that say what does not fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.conftest import RunningServer
from tests.unit.explain.conftest import Data, predictor_settings, rows_request
from wharf.errors import ConfigurationError, InvalidInput, ModelLoadError
from wharf.explain.model import Explainer
from wharf.explain.settings import ExplainerSettings
from wharf.transformer import PredictorSettings


def _csv(path: Path, rows: np.ndarray, header: list[str]) -> str:
    lines = [",".join(header), *(",".join(str(float(v)) for v in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _explainer(server: RunningServer, model: str, config: dict[str, Any], protocol: str = "v2") -> Explainer:
    explainer = Explainer(
        model,
        settings=ExplainerSettings(config=json.dumps(config)),
        predictor=predictor_settings(server, model, protocol),
    )
    explainer.load()
    return explainer


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory, iris: Data) -> str:
    return _csv(tmp_path_factory.mktemp("bg") / "bg.csv", iris[0][::5], ["sl", "sw", "pl", "pw"])


def test_auto_explains_a_forest_with_its_trees(
    predictors: RunningServer, repository: Path, iris_csv: str, iris: Data
) -> None:
    config = {"method": "shap", "storageUri": iris_csv, "model": {"storageUri": str(repository / "iris")}}
    explainer = _explainer(predictors, "iris", config)
    try:
        explanation = explainer.explain(rows_request(iris[0][:1]))
    finally:
        explainer.unload()
    assert explanation.method == "shap.tree"
    assert explanation.v1["explanations"][0]["feature_names"] == ["sl", "sw", "pl", "pw"]


def test_auto_explains_a_model_without_trees_with_kernel_shap(
    predictors: RunningServer, repository: Path, tmp_path: Path, wide: Data
) -> None:
    background = _csv(tmp_path / "bg.csv", wide[0][:5], [f"x{i}" for i in range(8)])
    config = {
        "method": "shap",
        "storageUri": background,
        "nSamples": 20,
        "model": {"storageUri": str(repository / "wide")},
    }
    explainer = _explainer(predictors, "wide", config)
    try:
        assert explainer.explain(rows_request(wide[0][:1])).method == "shap.kernel"
    finally:
        explainer.unload()


def test_a_background_the_predictor_refuses_fails_the_load(
    predictors: RunningServer, tmp_path: Path, iris: Data
) -> None:
    background = _csv(tmp_path / "bg.csv", iris[0][:5, :3], ["a", "b", "c"])
    with pytest.raises(ModelLoadError, match=r"the predictor refused the background rows of .*bg.csv: predictor"):
        _explainer(predictors, "iris", {"method": "shap", "type": "Kernel", "storageUri": background})


def test_a_background_unlike_the_models_inputs_fails_the_load(
    predictors: RunningServer, repository: Path, tmp_path: Path, iris: Data
) -> None:
    background = _csv(tmp_path / "bg.csv", iris[0][:5, :3], ["a", "b", "c"])
    config = {
        "method": "shap",
        "type": "Tree",
        "storageUri": background,
        "model": {"storageUri": str(repository / "iris")},
    }
    with pytest.raises(ConfigurationError, match="has 3 columns; the model takes 4 features"):
        _explainer(predictors, "iris", config)


def test_a_predictor_serving_another_model_fails_the_load(predictors: RunningServer, repository: Path) -> None:
    config = {"method": "shap", "type": "Tree", "model": {"storageUri": str(repository / "iris")}}
    with pytest.raises(ModelLoadError, match="the predictor's 'predict' differs from the model's at model.storageUri"):
        _explainer(predictors, "iris-value", config)  # the predictor `iris-value` is a regression


def test_outputs_the_method_cannot_use_are_told_to_each_request(
    predictors: RunningServer, iris_csv: str, iris: Data
) -> None:
    explainer = _explainer(
        predictors, "names", {"method": "shap", "storageUri": iris_csv, "output": "predict"}, protocol="v1"
    )
    try:
        with pytest.raises(InvalidInput, match="answers output 'predictions' as BYTES, not numbers"):
            explainer.explain(rows_request(iris[0][:1]))
    finally:
        explainer.unload()


def test_an_explainer_must_know_its_predictor() -> None:
    explainer = Explainer(
        "iris",
        settings=ExplainerSettings(config=json.dumps({"method": "art", "type": "SquareAttack"})),
        predictor=PredictorSettings(url=None),
    )
    with pytest.raises(
        ConfigurationError, match="explainer 'iris' does not know its predictor: set WHARF_PREDICTOR_URL"
    ):
        explainer.load()


def test_v1_bodies_are_read_as_predict_reads_them_and_arts_as_kserves(predictors: RunningServer, iris_csv: str) -> None:
    shap_explainer = _explainer(predictors, "iris", {"method": "shap", "type": "Kernel", "storageUri": iris_csv})
    art_explainer = _explainer(predictors, "digits", {"method": "art", "type": "SquareAttack"})
    try:
        rows = shap_explainer.v1_explain_request({"instances": [[1, 2, 3, 4]]})
        assert rows.inputs[0].data.tolist() == [[1, 2, 3, 4]]
        image = art_explainer.v1_explain_request({"instances": [[[0, 1], [2, 3]], 7]})
        assert [t.name for t in image.inputs] == ["input-0", "label"]
        with pytest.raises(InvalidInput, match="ragged"):
            shap_explainer.v1_explain_request({"instances": [[[0, 1], [2, 3]], 7]})
    finally:
        shap_explainer.unload()
        art_explainer.unload()


def test_auto_without_trees_or_background_says_why_neither_method_fits(
    predictors: RunningServer, repository: Path
) -> None:
    config = {"method": "shap", "model": {"storageUri": str(repository / "wide")}}
    with pytest.raises(ConfigurationError, match=r"Kernel SHAP needs background rows \(shap's TreeExplainer does not"):
        _explainer(predictors, "wide", config)
    with pytest.raises(ConfigurationError, match=r"background rows \(model format onnx\): give storageUri"):
        _explainer(predictors, "wide", {"method": "shap", "model": {"storageUri": "m.onnx", "format": "onnx"}})
