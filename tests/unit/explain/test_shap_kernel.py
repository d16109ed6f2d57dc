"""Kernel SHAP calling a real model server: shap's own KernelExplainer values (same seed, rows and background),
additivity, and one predictor call per explanation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
import shap

from tests.integration.conftest import RunningServer
from tests.unit.explain.conftest import Data, predictor_settings, requests_counted, rows_request
from wharf.errors import InvalidInput, PredictorFailed, ServerUnreachable
from wharf.explain.predictor import Predictor
from wharf.explain.shap_kernel import KernelShap
from wharf.transformer import PredictorSettings

NAMES = [f"x{i}" for i in range(8)]


@pytest.fixture
def predictor(predictors: RunningServer) -> Iterator[Predictor]:
    made = Predictor(predictor_settings(predictors, "wide"), "wide")
    yield made
    made.close()


def test_the_values_are_shaps_own_and_add_up(predictor: Predictor, repository: Path, wide: Data) -> None:
    x = wide[0]
    background, rows = x[:10], x[[20, 21, 22]]
    kernel = KernelShap("wide", predictor, background, NAMES, n_samples=100, seed=3)
    explanation = kernel.explain(rows_request(rows))
    out = {t.name: t for t in explanation.outputs}
    contributions, base = out["contributions"].data, out["base_values"].data
    predictions = out["predictions"].data

    model = joblib.load(repository / "wide" / "model.joblib")
    own_explainer = shap.KernelExplainer(model.predict_proba, background)
    np.random.seed(3)
    own = own_explainer.shap_values(rows, nsamples=100, l1_reg=False, silent=True)
    np.testing.assert_allclose(contributions, own, rtol=0, atol=1e-9)
    np.testing.assert_allclose(base, own_explainer.expected_value, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(predictions, model.predict_proba(rows))
    np.testing.assert_allclose(base + contributions.sum(axis=1), predictions, rtol=0, atol=1e-2)
    assert (explanation.method, out["predictions"].parameters) == ("shap.kernel", {"output_space": "probability"})
    assert contributions.shape == (3, 8, 2)


def test_an_explanation_of_several_rows_is_one_predictor_call(
    predictor: Predictor, predictors: RunningServer, wide: Data
) -> None:
    kernel = KernelShap("wide", predictor, wide[0][:10], NAMES, n_samples=100, seed=0)
    before = requests_counted(predictors, "wide")
    first = kernel.explain(rows_request(wide[0][30:35]))
    assert requests_counted(predictors, "wide") == before + 1
    again = kernel.explain(rows_request(wide[0][30:35]))
    np.testing.assert_array_equal(first.outputs[0].data, again.outputs[0].data)  # seeded: the same every time


def test_a_row_like_the_background_costs_only_itself(predictor: Predictor, wide: Data) -> None:
    background = wide[0][:1]
    kernel = KernelShap("wide", predictor, background, NAMES, n_samples=100, seed=0)
    explanation = kernel.explain(rows_request(background))  # no feature differs: nothing to sample
    assert not explanation.outputs[0].data.any()


def test_a_regression_over_v1_explains_its_predictions(predictors: RunningServer, iris: Data) -> None:
    predictor = Predictor(predictor_settings(predictors, "iris-value", "v1"), "iris-value")
    try:
        x = iris[0]
        kernel = KernelShap("iris", predictor, x[::10], list("abcd"), n_samples=50, seed=0)
        explanation = kernel.explain(rows_request(x[:2]))
    finally:
        predictor.close()
    out = {t.name: t for t in explanation.outputs}
    assert out["contributions"].data.shape == (2, 4, 1)
    assert out["predictions"].parameters == {"output_space": "raw"}
    total = out["base_values"].data + out["contributions"].data.sum(axis=1)
    np.testing.assert_allclose(total, out["predictions"].data, atol=1e-2)


def test_text_outputs_cannot_be_explained(predictors: RunningServer, iris: Data) -> None:
    predictor = Predictor(predictor_settings(predictors, "names", "v1"), "names", output="predict")
    try:
        with pytest.raises(InvalidInput, match="answers output 'predictions' as BYTES, not numbers"):
            KernelShap("iris", predictor, iris[0][::10], list("abcd"), n_samples=50, seed=0)
    finally:
        predictor.close()


def test_a_predictor_refusing_the_rows_is_a_failure_naming_its_answer(predictors: RunningServer, iris: Data) -> None:
    predictor = Predictor(predictor_settings(predictors, "iris"), "iris")
    try:
        with pytest.raises(PredictorFailed, match="predictor 'iris' answered 400: .*takes 4 features per row, got 3"):
            KernelShap("iris", predictor, iris[0][::10, :3], list("abc"), n_samples=50, seed=0)
    finally:
        predictor.close()


def test_a_predictor_that_is_not_there_is_unreachable() -> None:
    predictor = Predictor(PredictorSettings(url="http://127.0.0.1:9", protocol="v2", timeout_s=5), "iris")
    try:
        with pytest.raises(ServerUnreachable, match="cannot reach http://127.0.0.1:9"):
            predictor(np.ones((1, 4)))
    finally:
        predictor.close()
