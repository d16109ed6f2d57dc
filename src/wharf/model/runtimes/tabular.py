"""What the tabular runtimes (scikit-learn, XGBoost, LightGBM) share: a feature matrix in, one output per method.

A tabular model takes one 2-D numeric tensor `[rows, features]` (a single row may come as a 1-D tensor) and
offers named prediction methods (`predict`, `predict_proba`, ...), each producing the output of its own name.
A request gets `predict` unless the parameter `method` names another, or it asks for outputs named like methods.

A model fitted on named columns (scikit-learn's `feature_names_in_`, a LightGBM or XGBoost Booster's feature names)
also takes them by name, one 1-D tensor per column, as KServe's servers and MLServer's `pd` codec do: a request
naming several inputs, or marked `"content_type": "pd"` (a request or input parameter), or V1 row objects
(`{"instances": [{"sepal_length": 5.1, ...}]}`, which arrive as one tensor per name). Every column must be given,
and no other; each keeps its tensor's datatype (BYTES columns are text). The metadata lists the columns as the
model's inputs. A model without named columns takes named tensors only with `pd`, as columns in the order sent.
What this adds per request is a length and a parameter lookup; the columns path costs one array per column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wharf.errors import InvalidInput
from wharf.model.base import Model
from wharf.protocol.v2 import InferRequest, TensorSpec

DEFAULT_METHOD = "predict"
PANDAS = "pd"  # the content type (MLServer's codec name, KServe's `content_type`) of a request of named columns


@dataclass(frozen=True, slots=True)
class Method:
    """A prediction method: a function of the feature matrix, and the datatype and shape of what it returns."""

    run: Callable[[Any], np.ndarray]
    datatype: str
    shape: list[int]


class TabularModel(Model):
    """A model over a feature matrix; `load` sets `n_features` (when the model knows it), `methods`, and `columns`
    with their datatypes when the model was fitted on named columns."""

    strict_inputs = False
    #: Datatype advertised for the feature matrix (any numeric datatype is accepted).
    input_datatype = "FP64"

    def __init__(self, name: str, artifact: Path, version: str | None = None) -> None:
        super().__init__(name, version)
        self.artifact = artifact
        self.n_features: int | None = None
        self.methods: dict[str, Method] = {}
        self.columns: list[str] | None = None
        self.column_datatypes: dict[str, str] = {}
        #: The framework's own model once loaded (a scikit-learn estimator, an XGBoost or LightGBM Booster), for
        #: code that reads its internals (tree explanations).
        self.estimator: Any = None

    def inputs(self) -> list[TensorSpec]:
        if self.columns:
            return [TensorSpec(c, self.column_datatypes.get(c, self.input_datatype), [-1]) for c in self.columns]
        return [TensorSpec("input-0", self.input_datatype, [-1, self.n_features or -1])]

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec(name, method.datatype, method.shape) for name, method in self.methods.items()]

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        features = self.features(payload)
        return {name: self.methods[name].run(features) for name in self.chosen_methods(payload)}

    def features(self, request: InferRequest) -> Any:
        """The request's features, checked against the model: a matrix, or `table` of its named columns."""
        tensor = request.inputs[0]
        maybe_columns = len(request.inputs) != 1 or request.parameters or tensor.parameters or self.columns
        if maybe_columns and self._by_column(request):
            return self.table(self._named_columns(request))
        features = tensor.data.reshape(1, -1) if tensor.data.ndim == 1 else tensor.data
        if features.ndim != 2:
            raise InvalidInput(
                f"model '{self.name}' takes a 2-D input [rows, features], got shape {list(tensor.data.shape)}"
            )
        return self._checked(features, tensor.datatype)

    def table(self, columns: dict[str, np.ndarray]) -> Any:
        """What the model predicts from named columns (each 1-D, of one length, in the model's order): by default
        the matrix of them side by side; scikit-learn's runtime makes a DataFrame."""
        matrix = np.column_stack(list(columns.values()))
        return self._checked(matrix, "BYTES" if matrix.dtype.kind == "O" else str(matrix.dtype))

    def _checked(self, features: np.ndarray, datatype: str) -> np.ndarray:
        if features.dtype.kind not in "biuf":
            raise InvalidInput(f"model '{self.name}' takes numeric input, got {datatype}")
        if self.n_features is not None and features.shape[1] != self.n_features:
            raise InvalidInput(f"model '{self.name}' takes {self.n_features} features per row, got {features.shape[1]}")
        return features

    def _by_column(self, request: InferRequest) -> bool:
        """Whether the request's inputs are named columns rather than one feature matrix."""
        inputs, columns = request.inputs, self.columns
        first = inputs[0]
        if request.parameters.get("content_type") == PANDAS or (
            first.parameters is not None and first.parameters.get("content_type") == PANDAS
        ):
            return True
        if len(inputs) != 1:
            if columns is None:
                raise InvalidInput(
                    f"model '{self.name}' takes one input tensor, got {len(inputs)} "
                    f'(named columns need the parameter "content_type": "{PANDAS}")'
                )
            return True
        # one column by name (a whole row of a model with as many columns is a matrix's, as V1 rows arrive)
        return (
            columns is not None
            and first.data.ndim == 1
            and first.name in columns
            and (len(columns) == 1 or first.data.size != len(columns))
        )

    def _named_columns(self, request: InferRequest) -> dict[str, np.ndarray]:
        """The request's inputs as the model's columns, in its order; missing or extra ones are refused."""
        given = {t.name: t.data for t in request.inputs}
        expected = self.columns or list(given)
        missing = [c for c in expected if c not in given]
        extra = [n for n in given if n not in set(expected)]
        if missing or extra:
            found = (("missing", missing), ("unknown", extra))
            problems = [f"{kind} column(s) {names}" for kind, names in found if names]
            raise InvalidInput(f"model '{self.name}': {'; '.join(problems)}; it takes the columns {expected}")
        columns: dict[str, np.ndarray] = {}
        for name in expected:
            data = given[name]
            if data.ndim == 2 and data.shape[1] == 1:
                data = data.reshape(-1)
            if data.ndim != 1:
                raise InvalidInput(
                    f"model '{self.name}': column '{name}' must be 1-D [rows] (or [rows, 1]), "
                    f"got shape {list(data.shape)}"
                )
            rows = len(next(iter(columns.values()))) if columns else len(data)
            if len(data) != rows:
                raise InvalidInput(
                    f"model '{self.name}': column '{name}' has {len(data)} rows, column '{expected[0]}' has {rows}"
                )
            columns[name] = data
        return columns

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
