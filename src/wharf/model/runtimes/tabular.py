"""What the tabular runtimes (scikit-learn, XGBoost, LightGBM) share: a feature matrix in, one output per method.

A tabular model takes one 2-D numeric tensor `[rows, features]` (a single row may come as a 1-D tensor) and
offers named prediction methods (`predict`, `predict_proba`, ...), each producing the output of its own name.
A request gets `predict` unless the parameter `method` names another, or it asks for outputs named like methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wharf.errors import InvalidInput
from wharf.model.base import Model
from wharf.protocol.v2 import InferRequest, TensorSpec

DEFAULT_METHOD = "predict"


@dataclass(frozen=True, slots=True)
class Method:
    """A prediction method: a function of the feature matrix, and the datatype and shape of what it returns."""

    run: Callable[[np.ndarray], np.ndarray]
    datatype: str
    shape: list[int]


class TabularModel(Model):
    """A model over a feature matrix; `load` sets `n_features` (when the model knows it) and `methods`."""

    strict_inputs = False
    #: Datatype advertised for the feature matrix (any numeric datatype is accepted).
    input_datatype = "FP64"

    def __init__(self, name: str, artifact: Path, version: str | None = None) -> None:
        super().__init__(name, version)
        self.artifact = artifact
        self.n_features: int | None = None
        self.methods: dict[str, Method] = {}

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("input-0", self.input_datatype, [-1, self.n_features or -1])]

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(name, method.datatype, method.shape) for name, method in self.methods.items()]

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        features = self.features(payload)
        return {name: self.methods[name].run(features) for name in self.chosen_methods(payload)}

    def features(self, request: InferRequest) -> np.ndarray:
        """The request's feature matrix, checked against the model."""
        if len(request.inputs) != 1:
            raise InvalidInput(f"model '{self.name}' takes one input tensor, got {len(request.inputs)}")
        tensor = request.inputs[0]
        features = tensor.data.reshape(1, -1) if tensor.data.ndim == 1 else tensor.data
        if features.ndim != 2:
            raise InvalidInput(
                f"model '{self.name}' takes a 2-D input [rows, features], got shape {list(tensor.data.shape)}"
            )
        if features.dtype.kind not in "biuf":
            raise InvalidInput(f"model '{self.name}' takes numeric input, got {tensor.datatype}")
        if self.n_features is not None and features.shape[1] != self.n_features:
            raise InvalidInput(f"model '{self.name}' takes {self.n_features} features per row, got {features.shape[1]}")
        return features

    def chosen_methods(self, request: InferRequest) -> list[str]:
        """The methods to run: the `method` parameter, else the requested outputs that are methods, else predict."""
        wanted = request.parameters.get("method")
        if wanted is None:
            requested = [o.name for o in request.outputs or () if o.name in self.methods]
            if requested:
                return requested
            wanted = DEFAULT_METHOD
        if not isinstance(wanted, str) or wanted not in self.methods:
            raise InvalidInput(f"model '{self.name}' has no method {wanted!r}; it offers {list(self.methods)}")
        return [wanted]
