"""The rows an explain request asks about, as the FP64 feature matrix the SHAP methods take.

A request carries one tensor `[rows, features]` (one row may come as `[features]`; V1 `instances` rows arrive so),
or one 1-D tensor per feature named as the features (V1 row objects, `{"instances": [{"a": 1, ...}]}`, arrive so).
A row of the wrong length, a missing or unknown column, or values that are not numbers are refused, naming them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wharf.errors import ConfigurationError, InvalidInput
from wharf.protocol.v2 import InferRequest


def feature_names(count: int, configured: Sequence[str] | None, *found: Sequence[str] | None) -> list[str]:
    """The names of `count` features: the configured ones (`featureNames`), else the first `found` (the
    background's header, the model's columns), else f0, f1, ..."""
    if configured is not None and len(configured) != count:
        raise ConfigurationError(f"featureNames: {len(configured)} names given for {count} features")
    chosen = next((names for names in (configured, *found) if names is not None), None)
    return list(chosen) if chosen is not None else [f"f{i}" for i in range(count)]


def feature_rows(request: InferRequest, names: Sequence[str], explainer: str) -> np.ndarray:
    """The request's rows [rows, len(names)] as FP64."""
    first = request.inputs[0]
    if len(request.inputs) == 1 and (first.name not in names or len(names) == 1):
        rows = first.data
        rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
    else:
        rows = _columns(request, names, explainer)
    if rows.ndim != 2:
        raise InvalidInput(f"explainer '{explainer}' takes rows [rows, features], got shape {list(rows.shape)}")
    if rows.shape[1] != len(names):
        raise InvalidInput(
            f"explainer '{explainer}' takes {len(names)} features per row ({', '.join(names)}), got {rows.shape[1]}"
        )
    if rows.dtype.kind not in "biuf":
        raise InvalidInput(f"explainer '{explainer}' takes numeric features, got {first.datatype}")
    if rows.shape[0] == 0:
        raise InvalidInput(f"explainer '{explainer}' was given no rows to explain")
    return rows.astype(np.float64, copy=False)


def _columns(request: InferRequest, names: Sequence[str], explainer: str) -> np.ndarray:
    given = request.named()
    missing = [n for n in names if n not in given]
    unknown = [n for n in given if n not in set(names)]
    if missing or unknown:
        found = (("missing", missing), ("unknown", unknown))
        problems = "; ".join(f"{kind} feature(s) {listed}" for kind, listed in found if listed)
        raise InvalidInput(f"explainer '{explainer}': {problems}; it takes the features {list(names)}")
    columns = [given[n].reshape(-1) for n in names]
    if len({len(c) for c in columns}) != 1:
        raise InvalidInput(f"explainer '{explainer}': the features {list(names)} differ in their number of rows")
    not_numbers = [n for n, c in zip(names, columns) if c.dtype.kind not in "biuf"]
    if not_numbers:
        raise InvalidInput(f"explainer '{explainer}' takes numeric features; {not_numbers} are not numbers")
    return np.column_stack(columns)
