"""Data and helpers shared by the scikit-learn runtime's tests: small datasets, and a model served from a fitted
estimator."""

from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_iris, make_classification, make_regression

from wharf.model.runtimes.sklearn import SKLearnModel

IRIS_X, IRIS_Y = load_iris(return_X_y=True)
SPECIES = np.array(["setosa", "versicolor", "virginica"])
BINARY_X, BINARY_Y = make_classification(200, 6, random_state=0)
REGRESSION_X, REGRESSION_Y = make_regression(200, 5, n_targets=2, random_state=0)


def served(tmp_path: Path, estimator: Any) -> SKLearnModel:
    """The runtime's model of `estimator`, saved with joblib under `tmp_path` and loaded."""
    joblib.dump(estimator, tmp_path / "model.joblib")
    model = SKLearnModel("m", tmp_path / "model.joblib")
    model.load()
    return model


def is_direct(model: SKLearnModel, method: str) -> bool:
    """Whether `model` computes `method` itself, not through the estimator's bound method."""
    return getattr(model.methods[method].run, "__self__", None) is None
