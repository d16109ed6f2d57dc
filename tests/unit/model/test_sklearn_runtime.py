"""The scikit-learn runtime computes linear models directly, with exactly scikit-learn's results (the other
estimators' direct computations: test_sklearn_direct.py)."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import (
    HuberRegressor,
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.neighbors import KNeighborsClassifier


from tests.unit.model.sklearn_models import (
    BINARY_X,
    BINARY_Y,
    IRIS_X,
    IRIS_Y,
    REGRESSION_X,
    REGRESSION_Y,
    SPECIES,
    is_direct,
    served,
)
from wharf.model.runtimes.sklearn_direct import _same


LINEAR = [
    (LogisticRegression(max_iter=1000).fit(IRIS_X, IRIS_Y), IRIS_X, ["predict", "decision_function"]),
    (LogisticRegression(max_iter=1000).fit(IRIS_X, SPECIES[IRIS_Y]), IRIS_X, ["predict", "decision_function"]),
    (LogisticRegression().fit(BINARY_X, BINARY_Y), BINARY_X, ["predict", "decision_function"]),
    (SGDClassifier(random_state=0).fit(BINARY_X, BINARY_Y), BINARY_X, ["predict", "decision_function"]),
    (LinearRegression().fit(REGRESSION_X, REGRESSION_Y), REGRESSION_X, ["predict"]),
    (HuberRegressor().fit(REGRESSION_X, REGRESSION_Y[:, 0]), REGRESSION_X, ["predict"]),
]


@pytest.mark.parametrize(("estimator", "features", "methods"), LINEAR, ids=lambda v: type(v).__name__)
def test_linear_models_are_computed_directly_and_exactly(
    tmp_path: Path, estimator: Any, features: np.ndarray, methods: list[str]
) -> None:
    model = served(tmp_path, estimator)
    noisy = features * 3 + np.random.default_rng(1).normal(size=features.shape)
    for method in methods:
        assert is_direct(model, method)
        for dtype in ("float64", "float32", "int64", "int32"):
            for rows in (features[:1], features, noisy):
                found = model.methods[method].run(rows.astype(dtype))
                expected = getattr(estimator, method)(rows.astype(dtype))
                assert found.dtype == expected.dtype and found.shape == expected.shape
                np.testing.assert_array_equal(found, expected)


def test_what_it_has_not_checked_goes_to_scikit_learn(tmp_path: Path) -> None:
    estimator = LogisticRegression(max_iter=1000).fit(IRIS_X, IRIS_Y)
    model = served(tmp_path, estimator)
    predict = model.methods["predict"].run
    with pytest.raises(ValueError, match="NaN"):
        predict(np.array([[np.nan, 1.0, 2.0, 3.0]]))
    with pytest.raises(ValueError, match="infinity"):
        predict(np.array([[np.inf, 1.0, 2.0, 3.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="0 sample"):
        predict(np.zeros((0, 4)))
    half = IRIS_X.astype(np.float16)
    np.testing.assert_array_equal(predict(half), estimator.predict(half))


def test_other_estimators_and_methods_keep_scikit_learn(tmp_path: Path) -> None:
    logistic = served(tmp_path, LogisticRegression(max_iter=1000).fit(IRIS_X, IRIS_Y))
    assert not is_direct(logistic, "predict_proba")
    ridge = served(tmp_path, RidgeClassifier().fit(IRIS_X, IRIS_Y))  # its own predict
    assert not is_direct(ridge, "predict") and is_direct(ridge, "decision_function")
    assert not is_direct(served(tmp_path, Ridge().fit(REGRESSION_X, REGRESSION_Y)), "predict")
    forest = served(tmp_path, RandomForestClassifier(n_estimators=3, random_state=0).fit(IRIS_X, IRIS_Y))
    assert not is_direct(forest, "predict_log_proba")
    neighbours = served(tmp_path, KNeighborsClassifier().fit(IRIS_X, IRIS_Y))
    assert not any(is_direct(neighbours, method) for method in neighbours.methods)


def test_the_probe_refuses_a_computation_that_differs() -> None:
    estimator = LogisticRegression(max_iter=1000).fit(IRIS_X, IRIS_Y)
    assert _same(estimator.predict, estimator.predict, 4)
    assert not _same(lambda rows: estimator.predict(rows) + 1, estimator.predict, 4)
    assert not _same(lambda rows: estimator.predict(rows).astype(np.int32), estimator.predict, 4)
