"""scikit-learn runtime: estimators saved with joblib or pickle (including the XGBoost and LightGBM wrappers).

Offers each method among `METHODS` that the estimator has; see `tabular` for how a request chooses one.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from wharf.errors import ModelLoadError
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
        self.n_features = getattr(estimator, "n_features_in_", None)
        self.methods = {m: _method(estimator, m) for m in METHODS if hasattr(estimator, m)}


def _method(estimator: Any, name: str) -> Method:
    """`estimator.name` with the datatype and shape it returns, as far as the estimator tells."""
    classes = getattr(estimator, "classes_", None)
    if isinstance(classes, list):  # a multi-output classifier's, one array per output: left undeclared
        classes = None
    n_classes = len(classes) if classes is not None else -1
    if name == "predict":
        return Method(estimator.predict, datatype_of(np.asarray(classes)) if classes is not None else "FP64", [-1])
    if name == "transform":
        return Method(estimator.transform, "FP64", [-1, -1])
    if name == "decision_function" and n_classes == 2:
        return Method(estimator.decision_function, "FP64", [-1])
    return Method(getattr(estimator, name), "FP64", [-1, n_classes])


def create(name: str, artifact: Path, version: str | None = None) -> SKLearnModel:
    return SKLearnModel(name, artifact, version)
