"""scikit-learn runtime: estimators saved with joblib or pickle (including the XGBoost and LightGBM wrappers).

Offers each method among `METHODS` that the estimator has; see `tabular` for how a request chooses one. An estimator
fitted on a DataFrame (a pipeline selecting columns by name, say) gets one: named columns become a DataFrame of them
(BYTES columns as text), a feature matrix a DataFrame of its columns under the fitted names (pandas is needed then).
The metadata gives a column the datatype BYTES where an encoder of a `ColumnTransformer` learnt text categories for
it, else FP64.

scikit-learn checks its input on every call (about 100 µs on 1.9, fifty times the arithmetic of a linear model on a
few rows). Wharf has already checked the matrix (2-D, numeric, the estimator's number of features), so for the
estimators that `sklearn_direct` knows (linear models, trees, forests, gradient boosting, scalers, pipelines of them)
each method runs that module's direct computation, once a probe at load time has shown the results to be identical
to the estimator's. Any other input (no rows, NaN or infinity, another dtype) still goes to scikit-learn, which
rejects it with its own message or computes it as usual.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from wharf.errors import InvalidInput, ModelLoadError
from wharf.model.runtimes.sklearn_direct import Compute, direct
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
    run = direct(estimator, name, checked) or checked
    if name == "predict":
        return Method(run, datatype_of(np.asarray(classes)) if classes is not None else "FP64", [-1])
    if name == "transform":
        return Method(run, "FP64", [-1, -1])
    if name == "decision_function" and n_classes == 2:
        return Method(run, "FP64", [-1])
    return Method(run, "FP64", [-1, n_classes])


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


def create(name: str, artifact: Path, version: str | None = None) -> SKLearnModel:
    return SKLearnModel(name, artifact, version)
