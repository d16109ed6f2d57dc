"""scikit-learn runtime: estimators saved with joblib or pickle.

`predict` by default; `predict_proba` (or any other method the estimator has, among `METHODS`) when the request
parameter `method` names it or the request asks for an output of that name.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from wharf.errors import InvalidInput, ModelLoadError
from wharf.model.base import Model
from wharf.protocol.tensors import datatype_of
from wharf.protocol.v2 import InferRequest, TensorSpec

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform")


class SKLearnModel(Model):
    platform = "sklearn"
    strict_inputs = False

    def __init__(self, name: str, artifact: Path, version: str | None = None) -> None:
        super().__init__(name, version)
        self.artifact = artifact
        self.estimator: Any = None

    def load(self) -> None:
        try:
            if self.artifact.suffix == ".joblib":
                self.estimator = joblib.load(self.artifact)
            else:
                with self.artifact.open("rb") as f:
                    self.estimator = pickle.load(f)
        except Exception as e:
            raise ModelLoadError(f"cannot load scikit-learn model from {self.artifact}: {e}") from e
        if not hasattr(self.estimator, "predict") and not hasattr(self.estimator, "transform"):
            raise ModelLoadError(f"{self.artifact} holds a {type(self.estimator).__name__}, not an estimator")

    @property
    def n_features(self) -> int | None:
        return getattr(self.estimator, "n_features_in_", None)

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("input-0", "FP64", [-1, self.n_features or -1])]

    def outputs(self) -> list[TensorSpec]:
        classes = getattr(self.estimator, "classes_", None)
        datatype = datatype_of(np.asarray(classes)) if classes is not None else "FP64"
        return [TensorSpec("predict", datatype, [-1])]

    def _method(self, request: InferRequest) -> str:
        wanted = request.parameters.get("method")
        if wanted is None and request.outputs:
            wanted = next((o.name for o in request.outputs if o.name in METHODS), None)
        wanted = wanted or "predict"
        if wanted not in METHODS or not hasattr(self.estimator, wanted):
            available = [m for m in METHODS if hasattr(self.estimator, m)]
            raise InvalidInput(f"model '{self.name}' has no method {wanted!r}; it offers {available}")
        return wanted

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        if len(payload.inputs) != 1:
            raise InvalidInput(f"model '{self.name}' takes one input tensor, got {len(payload.inputs)}")
        features = payload.inputs[0].data
        if features.ndim == 1:
            features = features.reshape(1, -1)
        if features.ndim != 2:
            raise InvalidInput(f"model '{self.name}' takes a 2-D input [rows, features], got shape {list(features.shape)}")
        if features.dtype.kind not in "biuf":
            raise InvalidInput(f"model '{self.name}' takes numeric input, got {payload.inputs[0].datatype}")
        if self.n_features is not None and features.shape[1] != self.n_features:
            raise InvalidInput(
                f"model '{self.name}' takes {self.n_features} features per row, got {features.shape[1]}"
            )
        method = self._method(payload)
        return {method: getattr(self.estimator, method)(features)}


def create(name: str, artifact: Path, version: str | None = None) -> SKLearnModel:
    return SKLearnModel(name, artifact, version)
