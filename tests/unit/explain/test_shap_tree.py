"""Tree SHAP against shap's own TreeExplainer on the same model and rows, for scikit-learn, XGBoost and LightGBM
artifacts loaded as the model server loads them; additivity within 1e-6 of the model's own output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import numpy as np
import pytest
import shap
import xgboost
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from tests.unit.explain.conftest import Data, rows_request
from wharf.errors import ConfigurationError, ModelLoadError
from wharf.explain.predictor import Predictor
from wharf.explain.settings import ModelSource
from wharf.explain.shap_tree import TreeShap, TreeUnsupported, background_in_model_order, load_model
from tests.unit.explain.conftest import predictor_settings


@dataclass(frozen=True)
class Case:
    """A model to save, its format, the output its SHAP values add up to, and whether a background makes them
    interventional."""

    save: Callable[[Path, Data], Path]
    format: str
    space: str
    output: Callable[[Any, np.ndarray], np.ndarray]
    interventional: bool


def _joblib(estimator: Any) -> Callable[[Path, Data], Path]:
    def save(folder: Path, data: Data) -> Path:
        x, y = data
        fitted = estimator.fit(x, y if not isinstance(estimator, RandomForestRegressor) else x[:, 0] + y)
        joblib.dump(fitted, folder / "model.joblib")
        return folder / "model.joblib"

    return save


def _xgboost(params: dict) -> Callable[[Path, Data], Path]:
    def save(folder: Path, data: Data) -> Path:
        x, y = data
        labels = (y == 1) if params["objective"].startswith("binary") else y
        xgboost.train(params, xgboost.DMatrix(x, labels), 20).save_model(folder / "model.json")
        return folder / "model.json"

    return save


def _lightgbm(params: dict) -> Callable[[Path, Data], Path]:
    def save(folder: Path, data: Data) -> Path:
        x, y = data
        target = x[:, 0] if params["objective"] == "regression" else y
        lightgbm.train({**params, "verbose": -1}, lightgbm.Dataset(x, target), 20).save_model(folder / "model.txt")
        return folder / "model.txt"

    return save


def _margin(booster: Any, rows: np.ndarray) -> np.ndarray:
    return booster.inplace_predict(rows, predict_type="margin")


CASES = {
    "sklearn forest": Case(
        _joblib(RandomForestClassifier(20, random_state=0)), "sklearn", "probability",
        lambda e, x: e.predict_proba(x), interventional=False,
    ),
    "sklearn regression forest": Case(
        _joblib(RandomForestRegressor(20, random_state=0)), "sklearn", "raw",
        lambda e, x: e.predict(x), interventional=False,
    ),
    "sklearn boosting, binary": Case(
        _joblib(GradientBoostingClassifier(n_estimators=20, random_state=0)), "sklearn", "margin",
        lambda e, x: e.decision_function(x), interventional=False,
    ),
    "xgboost multiclass": Case(
        _xgboost({"objective": "multi:softprob", "num_class": 3}), "xgboost", "margin", _margin, interventional=True
    ),
    "xgboost binary": Case(_xgboost({"objective": "binary:logistic"}), "xgboost", "margin", _margin, interventional=True),
    "lightgbm multiclass": Case(
        _lightgbm({"objective": "multiclass", "num_class": 3}), "lightgbm", "margin",
        lambda b, x: b.predict(x, raw_score=True), interventional=False,
    ),
    "lightgbm regression": Case(
        _lightgbm({"objective": "regression"}), "lightgbm", "margin",
        lambda b, x: b.predict(x, raw_score=True), interventional=True,
    ),
}  # fmt: skip


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, iris: Data) -> tuple[Case, Any]:
    """A case and its model, saved and loaded again as the model server loads it."""
    chosen = CASES[request.param]
    if request.param == "sklearn boosting, binary":
        iris = (iris[0], (iris[1] == 1).astype(int))
    artifact = chosen.save(tmp_path_factory.mktemp("model"), iris)
    return chosen, load_model(ModelSource(storageUri=str(artifact), format=chosen.format), "iris")


@pytest.mark.parametrize("with_background", [False, True])
def test_contributions_are_shaps_own_and_add_up_to_the_models_output(
    case: tuple[Case, Any], iris: Data, with_background: bool
) -> None:
    chosen, model = case
    x = iris[0]
    background, rows = (x[::5] if with_background else None), x[[0, 60, 120, 149]]
    tree = TreeShap("iris", model, background, ["a", "b", "c", "d"], seed=0)
    explanation = tree.explain(rows_request(rows))
    out = {t.name: t for t in explanation.outputs}
    contributions, base = out["contributions"].data, out["base_values"].data
    predictions = out["predictions"].data

    interventional = with_background and chosen.interventional
    own = shap.TreeExplainer(
        model.estimator,
        data=background if interventional else None,
        feature_perturbation="interventional" if interventional else "tree_path_dependent",
    )
    expected = np.asarray(own.shap_values(rows), dtype=np.float64)
    np.testing.assert_allclose(contributions, expected.reshape(contributions.shape), rtol=0, atol=1e-9)
    np.testing.assert_allclose(base, np.asarray(own.expected_value).reshape(-1), rtol=0, atol=1e-9)

    own_output = np.asarray(chosen.output(model.estimator, rows), dtype=np.float64)
    np.testing.assert_allclose(predictions, own_output.reshape(predictions.shape), rtol=0, atol=1e-9)
    # within 1e-6, relative to outputs beyond 1: XGBoost sums its trees in float32
    np.testing.assert_allclose(base + contributions.sum(axis=1), predictions, rtol=1e-6, atol=1e-6)
    assert out["predictions"].parameters == {"output_space": chosen.space}
    assert explanation.method == "shap.tree"
    assert explanation.v1["output_space"] == chosen.space
    assert out["feature_names"].data.tolist() == [b"a", b"b", b"c", b"d"]


def test_the_v1_body_holds_one_explanation_per_row(case: tuple[Case, Any], iris: Data) -> None:
    _, model = case
    rows = iris[0][:2]
    explanation = TreeShap("iris", model, None, ["a", "b", "c", "d"], seed=0).explain(rows_request(rows))
    out = {t.name: t.data for t in explanation.outputs}
    first, second = explanation.v1["explanations"]
    assert first["feature_names"] == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(second["contributions"], out["contributions"][1])
    np.testing.assert_array_equal(second["prediction"], out["predictions"][1])
    np.testing.assert_array_equal(first["base_values"], out["base_values"])


def test_a_model_without_trees_is_not_for_tree_shap(tmp_path: Path, iris: Data) -> None:
    joblib.dump(LogisticRegression(max_iter=1000).fit(*iris), tmp_path / "model.joblib")
    model = load_model(ModelSource(storageUri=str(tmp_path / "model.joblib")), "iris")
    with pytest.raises(TreeUnsupported, match="shap's TreeExplainer does not read this LogisticRegression"):
        TreeShap("iris", model, None, ["a", "b", "c", "d"], seed=0)


def test_background_columns_must_be_the_models_inputs(tmp_path: Path, iris: Data) -> None:
    import pandas as pd

    x, y = iris
    frame = pd.DataFrame(x, columns=["sl", "sw", "pl", "pw"])
    joblib.dump(RandomForestClassifier(5, random_state=0).fit(frame, y), tmp_path / "model.joblib")
    model = load_model(ModelSource(storageUri=str(tmp_path / "model.joblib")), "iris")
    reordered = background_in_model_order(x[:, [3, 2, 1, 0]], ["pw", "pl", "sw", "sl"], model, "bg.csv")
    np.testing.assert_array_equal(reordered, x)
    with pytest.raises(ConfigurationError, match=r"has the columns \['sl', 'sw', 'pl', 'width'\]; the model takes"):
        background_in_model_order(x, ["sl", "sw", "pl", "width"], model, "bg.csv")
    with pytest.raises(ConfigurationError, match="background data bg.csv has 3 columns; the model takes 4 features"):
        background_in_model_order(x[:, :3], None, model, "bg.csv")


def test_the_predictor_must_answer_as_the_loaded_model(predictors: Any, repository: Path, iris: Data) -> None:
    """The repository's `iris` forest checks against its server; another forest does not."""
    x = iris[0][::10]
    served = load_model(ModelSource(storageUri=str(repository / "iris" / "model.joblib")), "iris")
    predictor = Predictor(predictor_settings(predictors, "iris"), "iris")
    try:
        TreeShap("iris", served, x, ["a", "b", "c", "d"], seed=0).check_predictor(predictor)
        assert predictor.output == "predict_proba"  # it compared the probabilities
        other = RandomForestClassifier(3, random_state=1).fit(*iris)
        joblib.dump(other, repository.parent / "other.joblib")
        stranger = load_model(ModelSource(storageUri=str(repository.parent / "other.joblib")), "iris")
        with pytest.raises(ModelLoadError, match="the predictor's 'predict_proba' differs from the model's"):
            TreeShap("iris", stranger, x, ["a", "b", "c", "d"], seed=0).check_predictor(predictor)
    finally:
        predictor.close()
