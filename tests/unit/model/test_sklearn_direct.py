"""Trees, forests, gradient boosting, scalers and pipelines are computed directly, with exactly scikit-learn's
results; any other input, and any class with a method of its own, keeps scikit-learn's."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor


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

TWO_LABELS = np.column_stack([IRIS_Y, IRIS_Y % 2])


def _gb_classifier(**options: Any) -> GradientBoostingClassifier:
    return GradientBoostingClassifier(n_estimators=15, random_state=0, **options)


CASES = [
    (DecisionTreeClassifier(random_state=0).fit(IRIS_X, SPECIES[IRIS_Y]), IRIS_X, ["predict", "predict_proba"]),
    (ExtraTreeClassifier(random_state=0).fit(BINARY_X, BINARY_Y), BINARY_X, ["predict", "predict_proba"]),
    (DecisionTreeClassifier(random_state=0).fit(IRIS_X, TWO_LABELS), IRIS_X, ["predict"]),
    (DecisionTreeRegressor(random_state=0).fit(REGRESSION_X, REGRESSION_Y[:, 0]), REGRESSION_X, ["predict"]),
    (ExtraTreeRegressor(random_state=0).fit(REGRESSION_X, REGRESSION_Y), REGRESSION_X, ["predict"]),
    (RandomForestClassifier(8, random_state=0).fit(IRIS_X, IRIS_Y), IRIS_X, ["predict", "predict_proba"]),
    (RandomForestClassifier(8, n_jobs=2, random_state=0).fit(BINARY_X, BINARY_Y), BINARY_X, ["predict"]),
    (ExtraTreesClassifier(8, random_state=0).fit(IRIS_X, SPECIES[IRIS_Y]), IRIS_X, ["predict", "predict_proba"]),
    (RandomForestRegressor(8, random_state=0).fit(REGRESSION_X, REGRESSION_Y[:, 0]), REGRESSION_X, ["predict"]),
    (ExtraTreesRegressor(8, random_state=0).fit(REGRESSION_X, REGRESSION_Y), REGRESSION_X, ["predict"]),
    (_gb_classifier().fit(IRIS_X, SPECIES[IRIS_Y]), IRIS_X, ["predict", "predict_proba", "decision_function"]),
    (_gb_classifier().fit(BINARY_X, BINARY_Y), BINARY_X, ["predict", "predict_proba", "decision_function"]),
    (_gb_classifier(init="zero").fit(BINARY_X, BINARY_Y), BINARY_X, ["predict", "decision_function"]),
    (GradientBoostingRegressor(n_estimators=15).fit(REGRESSION_X, REGRESSION_Y[:, 0]), REGRESSION_X, ["predict"]),
    (
        GradientBoostingRegressor(n_estimators=15, loss="huber").fit(REGRESSION_X, REGRESSION_Y[:, 1]),
        REGRESSION_X,
        ["predict"],
    ),
    (
        HistGradientBoostingClassifier(max_iter=10).fit(IRIS_X, SPECIES[IRIS_Y]),
        IRIS_X,
        ["predict", "predict_proba", "decision_function"],
    ),
    (
        HistGradientBoostingClassifier(max_iter=10).fit(BINARY_X, BINARY_Y),
        BINARY_X,
        ["predict", "predict_proba", "decision_function"],
    ),
    (HistGradientBoostingRegressor(max_iter=10).fit(REGRESSION_X, REGRESSION_Y[:, 0]), REGRESSION_X, ["predict"]),
    (
        HistGradientBoostingRegressor(max_iter=10, loss="poisson").fit(REGRESSION_X, np.abs(REGRESSION_Y[:, 0])),
        REGRESSION_X,
        ["predict"],
    ),
    (StandardScaler().fit(REGRESSION_X), REGRESSION_X, ["transform"]),
    (MinMaxScaler(clip=True).fit(REGRESSION_X[:100]), REGRESSION_X, ["transform"]),
    (MaxAbsScaler(clip=True).fit(REGRESSION_X[:100]), REGRESSION_X, ["transform"]),
    (RobustScaler().fit(REGRESSION_X), REGRESSION_X, ["transform"]),
    (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(IRIS_X, IRIS_Y),
        IRIS_X,
        ["predict", "decision_function"],
    ),
    (
        make_pipeline(MinMaxScaler(), "passthrough", DecisionTreeClassifier(random_state=0)).fit(IRIS_X, IRIS_Y),
        IRIS_X,
        ["predict", "predict_proba"],
    ),
    (
        make_pipeline(make_pipeline(RobustScaler(), MaxAbsScaler()), _gb_classifier()).fit(BINARY_X, BINARY_Y),
        BINARY_X,
        ["predict", "predict_proba", "decision_function"],
    ),
    (
        make_pipeline(StandardScaler(with_mean=False), RandomForestRegressor(5, random_state=0)).fit(
            REGRESSION_X, REGRESSION_Y
        ),
        REGRESSION_X,
        ["predict"],
    ),
    (make_pipeline(StandardScaler(), MinMaxScaler()).fit(REGRESSION_X), REGRESSION_X, ["transform"]),
    (make_pipeline(StandardScaler(), "passthrough").fit(REGRESSION_X), REGRESSION_X, ["transform"]),
]


@pytest.mark.parametrize(("estimator", "features", "methods"), CASES, ids=lambda v: type(v).__name__)
def test_direct_computations_give_exactly_scikit_learns_results(
    tmp_path: Path, estimator: Any, features: np.ndarray, methods: list[str]
) -> None:
    model = served(tmp_path, estimator)
    if "n_jobs" in estimator.get_params():  # threads add a forest's trees in a varying order: the reference is serial
        estimator.set_params(n_jobs=1)
    noisy = features * 3 + np.random.default_rng(1).normal(size=features.shape)
    for method in methods:
        assert is_direct(model, method), method
        for dtype in ("float64", "float32", "int64", "int32"):
            for rows in (features[:1], features, noisy, np.asfortranarray(noisy[::2])):
                found = model.methods[method].run(rows.astype(dtype))
                expected = getattr(estimator, method)(rows.astype(dtype))
                assert found.dtype == expected.dtype and found.shape == expected.shape, (method, dtype)
                np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize(
    "estimator",
    [
        DecisionTreeClassifier(random_state=0).fit(IRIS_X, IRIS_Y),
        RandomForestClassifier(4, random_state=0).fit(IRIS_X, IRIS_Y),
        _gb_classifier().fit(IRIS_X, IRIS_Y),
        HistGradientBoostingClassifier(max_iter=5).fit(IRIS_X, IRIS_Y),
        make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0)).fit(IRIS_X, IRIS_Y),
    ],
    ids=lambda v: type(v).__name__,
)
def test_what_it_has_not_checked_goes_to_scikit_learn(tmp_path: Path, estimator: Any) -> None:
    predict = served(tmp_path, estimator).methods["predict"].run
    with pytest.raises(ValueError, match="0 sample"):
        predict(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="features"):
        predict(np.zeros((2, 3)))
    for missing in (np.nan, np.inf):
        rows = np.array([[missing, 1.0, 2.0, 3.0]])
        try:
            expected: Any = estimator.predict(rows)  # trees take NaN; other estimators refuse it
        except ValueError as e:
            with pytest.raises(ValueError, match=re.escape(str(e))):
                predict(rows)
        else:
            np.testing.assert_array_equal(predict(rows), expected)
    half = IRIS_X.astype(np.float16)
    np.testing.assert_array_equal(predict(half), estimator.predict(half))


class OwnTree(DecisionTreeClassifier):
    def predict(self, X: Any, check_input: bool = True) -> Any:
        return super().predict(X, check_input)


class OwnForest(RandomForestClassifier):
    def predict_proba(self, X: Any) -> Any:
        return super().predict_proba(X)


class OwnBoosting(GradientBoostingClassifier):
    def decision_function(self, X: Any) -> Any:
        return super().decision_function(X)


class OwnScaler(StandardScaler):
    def transform(self, X: Any, copy: Any = None) -> Any:
        return super().transform(X, copy)


class OwnPipeline(Pipeline):
    def predict(self, X: Any, **params: Any) -> Any:
        return super().predict(X, **params)


class PlainTree(DecisionTreeClassifier):  # no method of its own
    pass


def test_a_class_with_its_own_method_keeps_scikit_learns(tmp_path: Path) -> None:
    tree = served(tmp_path, OwnTree(random_state=0).fit(IRIS_X, IRIS_Y))
    assert not is_direct(tree, "predict") and is_direct(tree, "predict_proba")
    assert is_direct(served(tmp_path, PlainTree(random_state=0).fit(IRIS_X, IRIS_Y)), "predict")
    forest = served(tmp_path, OwnForest(4, random_state=0).fit(IRIS_X, IRIS_Y))
    assert not is_direct(forest, "predict_proba") and not is_direct(forest, "predict")  # its predict uses it
    boosting = served(tmp_path, OwnBoosting(n_estimators=5).fit(IRIS_X, IRIS_Y))
    assert not any(is_direct(boosting, m) for m in ("predict", "predict_proba", "decision_function"))
    assert not is_direct(served(tmp_path, OwnScaler().fit(IRIS_X)), "transform")
    scaled = served(tmp_path, make_pipeline(OwnScaler(), LogisticRegression(max_iter=1000)).fit(IRIS_X, IRIS_Y))
    assert not is_direct(scaled, "predict")
    own = OwnPipeline([("scale", StandardScaler()), ("tree", DecisionTreeClassifier())]).fit(IRIS_X, IRIS_Y)
    pipeline = served(tmp_path, own)
    assert not is_direct(pipeline, "predict") and is_direct(pipeline, "predict_proba")


def test_estimators_it_does_not_know_keep_scikit_learns(tmp_path: Path) -> None:
    tree = served(tmp_path, DecisionTreeClassifier(random_state=0).fit(IRIS_X, IRIS_Y))
    assert not is_direct(tree, "predict_log_proba")
    several = served(tmp_path, RandomForestClassifier(4, random_state=0).fit(IRIS_X, TWO_LABELS))
    assert not any(is_direct(several, m) for m in several.methods)  # several outputs: lists of probabilities
    fitted_init = _gb_classifier(init=LogisticRegression(max_iter=1000)).fit(IRIS_X, IRIS_Y)
    assert not is_direct(served(tmp_path, fitted_init), "predict")  # its init's prediction varies by row
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0])
    histogram = served(tmp_path, categorical.fit(np.column_stack([IRIS_Y % 2, IRIS_X[:, 1:]]), IRIS_Y))
    assert not any(is_direct(histogram, m) for m in histogram.methods)  # categories: its own preprocessing


def test_loading_a_model_imports_only_its_own_packages(tmp_path: Path) -> None:
    joblib.dump(LogisticRegression(max_iter=1000).fit(IRIS_X, IRIS_Y), tmp_path / "model.joblib")
    script = (
        "import sys; from pathlib import Path; from wharf.model.runtimes.sklearn import SKLearnModel; "
        f"m = SKLearnModel('m', Path({str(tmp_path / 'model.joblib')!r})); m.load(); "
        "print(sorted(n for n in ('sklearn.ensemble', 'sklearn.tree', 'sklearn.pipeline') if n in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert found.stdout.strip() == "[]"  # its predict_proba has no direct computation: none of these was tried
