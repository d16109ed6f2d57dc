"""LightGBM runtime: Booster text files, as `Booster.save_model` writes them.

For a classification objective (binary, multiclass, multiclassova) the Booster predicts class probabilities;
the model offers `predict_proba` (one column per class, as `LGBMClassifier.predict_proba` gives them) and
`predict`, the most probable class index. Any other objective offers `predict`, what `Booster.predict` returns.
A `LGBMClassifier` or `LGBMRegressor` saved with joblib is an sklearn estimator: the sklearn runtime serves it.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm
import numpy as np

from wharf.errors import ModelLoadError
from wharf.model.runtimes.tabular import Method, TabularModel

CLASSIFICATION = ("binary", "multiclass", "multiclassova")


class LightGBMModel(TabularModel):
    platform = "lightgbm"

    def load(self) -> None:
        try:
            booster = lightgbm.Booster(model_file=str(self.artifact))
        except Exception as e:
            raise ModelLoadError(f"cannot load LightGBM model from {self.artifact}: {e}") from e
        self.n_features = booster.num_feature()
        columns = booster.num_model_per_iteration()
        if booster.params.get("objective") not in CLASSIFICATION:
            self.methods = {"predict": Method(booster.predict, "FP64", [-1, columns] if columns > 1 else [-1])}
            return

        def probabilities(features: np.ndarray) -> np.ndarray:
            return _per_class(booster.predict(features))

        self.methods = {
            "predict": Method(lambda features: np.argmax(probabilities(features), axis=1), "INT64", [-1]),
            "predict_proba": Method(probabilities, "FP64", [-1, max(columns, 2)]),
        }


def _per_class(predicted: np.ndarray) -> np.ndarray:
    """One probability column per class: a binary objective predicts only the positive class's."""
    return np.column_stack([1.0 - predicted, predicted]) if predicted.ndim == 1 else predicted


def create(name: str, artifact: Path, version: str | None = None) -> LightGBMModel:
    return LightGBMModel(name, artifact, version)
