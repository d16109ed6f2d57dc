"""LightGBM runtime: Booster text files, as `Booster.save_model` writes them (any name: KServe's is `model.bst`).

`predict` answers what `Booster.predict` returns, as KServe's LightGBM server does: for a classification objective
(binary, multiclass, multiclassova) probabilities, one column per class, or the positive class's alone for binary;
for any other objective its values. A classifier also offers `predict_proba` (one column per class, binary
included, as `LGBMClassifier.predict_proba` gives them) and `predict_class` (the most probable class's index).
A Booster trained on named features takes them by name too (see `tabular`); LightGBM's own default names
(`Column_0`, ...) are not names. The file is checked by its first bytes before LightGBM reads it.
A `LGBMClassifier` or `LGBMRegressor` saved with joblib is an sklearn estimator: the sklearn runtime serves it.
"""

from __future__ import annotations

import re
from pathlib import Path

import lightgbm
import numpy as np

from wharf.errors import ModelLoadError
from wharf.model.runtimes.signatures import Content, content_of, first_line
from wharf.model.runtimes.tabular import Method, TabularModel

CLASSIFICATION = ("binary", "multiclass", "multiclassova")
_UNNAMED = re.compile(r"Column_\d+")


class LightGBMModel(TabularModel):
    platform = "lightgbm"

    def load(self) -> None:
        content = content_of(self.artifact)
        if content is not Content.LIGHTGBM_TEXT:
            found = f"it is {content.value}" if content.runtime else "it does not start with 'tree\\nversion='"
            raise ModelLoadError(
                f"cannot load LightGBM model from {self.artifact}: expected a LightGBM text model "
                f"(Booster.save_model); {found}"
            )
        try:
            booster = lightgbm.Booster(model_file=str(self.artifact))
        except Exception as e:
            raise ModelLoadError(f"cannot load LightGBM model from {self.artifact}: {first_line(e)}") from None
        self.estimator = booster
        self.n_features = booster.num_feature()
        names = booster.feature_name()
        if not all(_UNNAMED.fullmatch(n) for n in names):
            self.columns = names
        columns = booster.num_model_per_iteration()
        predict = Method(booster.predict, "FP64", [-1, columns] if columns > 1 else [-1])
        if booster.params.get("objective") not in CLASSIFICATION:
            self.methods = {"predict": predict}
            return

        def probabilities(features: np.ndarray) -> np.ndarray:
            return _per_class(booster.predict(features))

        self.methods = {
            "predict": predict,
            "predict_proba": Method(probabilities, "FP64", [-1, max(columns, 2)]),
            "predict_class": Method(lambda features: np.argmax(probabilities(features), axis=1), "INT64", [-1]),
        }


def _per_class(predicted: np.ndarray) -> np.ndarray:
    """One probability column per class: a binary objective predicts only the positive class's."""
    return np.column_stack([1.0 - predicted, predicted]) if predicted.ndim == 1 else predicted


def create(name: str, artifact: Path, version: str | None = None) -> LightGBMModel:
    return LightGBMModel(name, artifact, version)
