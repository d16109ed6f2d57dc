"""scikit-learn runtime: estimators saved with joblib or pickle (including the XGBoost and LightGBM wrappers).

Offers each method among `METHODS` that the estimator has; see `tabular` for how a request chooses one. An estimator
fitted on a DataFrame (a pipeline selecting columns by name, say) gets one: named columns become a DataFrame of them
(BYTES columns as text), a feature matrix a DataFrame of its columns under the fitted names (pandas is needed then).
The metadata gives a column the datatype BYTES where an encoder of a `ColumnTransformer` learnt text categories for
it, else FP64.

scikit-learn checks its input on every call; on 1.9 that takes about 100 µs, fifty times the arithmetic of a linear
model on a few rows. Wharf has already checked the matrix (2-D, numeric, the estimator's number of features), so
for the linear models it computes the estimator's own expression directly (`_direct`), once a probe at load time
has shown the results to be identical to the estimator's. Any other input (no rows, NaN or infinity, another
dtype) still goes to scikit-learn, which rejects it with its own message or computes it as usual.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from wharf.errors import InvalidInput, ModelLoadError
from wharf.model.runtimes.tabular import Method, TabularModel
from wharf.protocol.tensors import datatype_of

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform")


class SKLearnModel(TabularModel):
    platform = "sklearn"

    def load(self) -> None:
        try:
            if self.artifact.suffix == ".joblib":
                estimator = joblib.load(self.artifact)
            else:
                with self.artifact.open("rb") as f:
                    estimator = pickle.load(f)
        except Exception as e:
            raise ModelLoadError(f"cannot load scikit-learn model from {self.artifact}: {e}") from e
        if not hasattr(estimator, "predict") and not hasattr(estimator, "transform"):
            raise ModelLoadError(f"{self.artifact} holds a {type(estimator).__name__}, not an estimator")
        self.estimator = estimator
        self.n_features = getattr(estimator, "n_features_in_", None)
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            self.columns = [str(name) for name in names]
            self.column_datatypes = _column_datatypes(estimator)
        self.methods = {m: _method(estimator, m, self.columns) for m in METHODS if hasattr(estimator, m)}

    def table(self, columns: dict[str, np.ndarray]) -> Any:
        """A DataFrame of the named columns; BYTES columns become text."""
        import pandas as pd

        if self.columns is None and self.n_features is not None and len(columns) != self.n_features:
            raise InvalidInput(f"model '{self.name}' takes {self.n_features} columns, got {len(columns)}")
        return pd.DataFrame({name: self._text(name, data) for name, data in columns.items()}, copy=False)

    def _text(self, column: str, data: np.ndarray) -> np.ndarray:
        if data.dtype.kind != "O":
            return data
        try:
            return np.array([v.decode() if isinstance(v, bytes) else v for v in data], dtype=object)
        except UnicodeDecodeError:
            raise InvalidInput(f"model '{self.name}': column '{column}' holds bytes that are not UTF-8 text") from None


def _method(estimator: Any, name: str, columns: list[str] | None) -> Method:
    """`estimator.name` with the datatype and shape it returns, as far as the estimator tells; an estimator fitted
    on named `columns` is given a feature matrix as a DataFrame of them."""
    classes = getattr(estimator, "classes_", None)
    if isinstance(classes, list):  # a multi-output classifier's, one array per output: left undeclared
        classes = None
    n_classes = len(classes) if classes is not None else -1
    checked = getattr(estimator, name)
    if columns is not None:
        checked = _framed(checked, columns)
    run = _direct(estimator, name, checked) or checked
    if name == "predict":
        return Method(run, datatype_of(np.asarray(classes)) if classes is not None else "FP64", [-1])
    if name == "transform":
        return Method(run, "FP64", [-1, -1])
    if name == "decision_function" and n_classes == 2:
        return Method(run, "FP64", [-1])
    return Method(run, "FP64", [-1, n_classes])


# The feature matrices `_direct` computes itself; any other goes to scikit-learn.
_DIRECT_DTYPES = frozenset(np.dtype(t) for t in ("float64", "float32", "int64", "int32"))

Compute = Callable[[np.ndarray], np.ndarray]


def _framed(method: Compute, columns: list[str]) -> Compute:
    """`method` given a DataFrame of `columns` in place of a feature matrix (a DataFrame goes as it is)."""
    import pandas as pd

    def run(features: Any) -> np.ndarray:
        return method(features if isinstance(features, pd.DataFrame) else pd.DataFrame(features, columns=columns))

    return run


def _column_datatypes(estimator: Any) -> dict[str, str]:
    """BYTES for the columns that an encoder in the estimator's first `ColumnTransformer` learnt text categories for."""
    try:
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline
    except ImportError:
        return {}
    first = estimator.steps[0][1] if isinstance(estimator, Pipeline) else estimator
    if not isinstance(first, ColumnTransformer):
        return {}
    datatypes = {}
    for _, transformer, selected in first.transformers_:
        steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
        categories = next((s.categories_ for s in steps if hasattr(s, "categories_")), None)
        if categories is None or not isinstance(selected, list | tuple | np.ndarray):
            continue
        for column, learnt in zip(selected, categories):
            if isinstance(column, str) and np.asarray(learnt).dtype.kind in "OSU":
                datatypes[column] = "BYTES"
    return datatypes


def _direct(estimator: Any, name: str, checked: Compute) -> Compute | None:
    """`estimator.name` (`checked`) without scikit-learn's per-call input checks, for a linear model whose class
    uses scikit-learn's own implementation of that method, once a probe has shown the results to be identical."""
    coef = getattr(estimator, "coef_", None)
    if not isinstance(coef, np.ndarray) or getattr(estimator, "n_features_in_", None) is None:
        return None  # sparse coefficients (after `sparsify()`), or no feature count to probe with
    compute = _linear_classifier(estimator, name) or _linear_regressor(estimator, name)
    if compute is None:
        return None

    def run(features: np.ndarray) -> np.ndarray:
        direct = (
            type(features) is np.ndarray
            and features.shape[0] > 0
            and features.dtype in _DIRECT_DTYPES
            and (features.dtype.kind != "f" or bool(np.isfinite(features).all()))
        )
        return compute(features) if direct else checked(features)

    return run if _same(run, checked, estimator.n_features_in_) else None


def _linear_classifier(estimator: Any, name: str) -> Compute | None:
    """What scikit-learn's `LinearClassifierMixin.predict` and `.decision_function` compute, once input is checked."""
    try:
        from sklearn.linear_model._base import LinearClassifierMixin
    except ImportError:  # no scikit-learn, or one that moved it
        return None
    own = {"predict": LinearClassifierMixin.predict, "decision_function": LinearClassifierMixin.decision_function}
    coef, intercept = estimator.coef_, getattr(estimator, "intercept_", None)
    classes = getattr(estimator, "classes_", None)
    if name not in own or getattr(type(estimator), name) is not own[name]:
        return None
    if not isinstance(estimator, LinearClassifierMixin) or not isinstance(classes, np.ndarray) or coef.ndim != 2:
        return None

    def scores(features: np.ndarray) -> np.ndarray:
        result = features @ coef.T + intercept
        return result.reshape(-1) if result.shape[1] == 1 else result

    def predict(features: np.ndarray) -> np.ndarray:
        found = scores(features)
        indices = (found > 0).astype(np.intp) if found.ndim == 1 else found.argmax(axis=1)
        return classes.take(indices, axis=0)

    return predict if name == "predict" else scores


def _linear_regressor(estimator: Any, name: str) -> Compute | None:
    """What scikit-learn's `LinearModel.predict` computes, once input is checked."""
    try:
        from sklearn.linear_model._base import LinearModel, MultiOutputLinearModel
    except ImportError:
        return None
    kind = type(estimator)
    if name != "predict" or not isinstance(estimator, LinearModel):
        return None
    if kind.predict not in (LinearModel.predict, MultiOutputLinearModel.predict):
        return None
    if kind._decision_function is not LinearModel._decision_function:
        return None
    coef, intercept = estimator.coef_, getattr(estimator, "intercept_", None)
    coef = coef.T if coef.ndim == 2 else coef

    def predict(features: np.ndarray) -> np.ndarray:
        return features @ coef + intercept

    return predict


def _same(direct: Compute, checked: Compute, n_features: int) -> bool:
    """Whether `direct` gives exactly what `checked` gives, for a few rows of each dtype `_direct` computes."""
    rng = np.random.default_rng(0)
    probes = [rng.normal(scale=10, size=(5, n_features)).astype(t) for t in ("float64", "float32")]
    probes += [rng.integers(-10, 10, size=(5, n_features)).astype(t) for t in ("int64", "int32")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. fitted with feature names, probed without
        for probe in probes:
            try:
                expected, found = checked(probe), direct(probe)
            except Exception:
                return False
            if found.dtype != expected.dtype or found.shape != expected.shape or not np.array_equal(found, expected):
                return False
    return True


def create(name: str, artifact: Path, version: str | None = None) -> SKLearnModel:
    return SKLearnModel(name, artifact, version)
