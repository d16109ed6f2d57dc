"""The answer of a SHAP explanation, in both of Wharf's shapes: per-feature contributions that add up, with the base
value, to the model's own output for each row.

V2 (and gRPC) tensors:
- `contributions` FP64 [rows, features, classes] (classes is 1 for a model with one output column),
- `base_values` FP64 [classes],
- `predictions` FP64 [rows, classes]: the model's output that base_values + the sum of contributions equals, with
  the tensor parameter `output_space`: `probability` (a classifier's probabilities), `margin` (a booster's raw
  score, before its link function: log-odds for a binary classifier), or `raw` (the output as the model answers
  it: a regression's value),
- `feature_names` BYTES [features].
V1 body: `{"explanations": [{"feature_names", "base_values", "contributions" [features][classes], "prediction"
[classes]}, ... one per row], "method": "shap.tree", "output_space": "..."}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from wharf.protocol.explanation import Explanation
from wharf.protocol.v2 import Tensor

OutputSpace = Literal["probability", "margin", "raw"]


def explanation(
    method: str,
    contributions: np.ndarray,
    base_values: np.ndarray,
    predictions: np.ndarray,
    feature_names: Sequence[str],
    output_space: OutputSpace,
) -> Explanation:
    """The explanation of `rows` rows from shap's values (`contributions` [rows, features] or [rows, features,
    classes]), its expected value(s) and the model's output for the rows ([rows] or [rows, classes])."""
    rows = len(contributions)
    contributions = np.asarray(contributions, dtype=np.float64)
    if contributions.ndim == 2:
        contributions = contributions[:, :, np.newaxis]
    base_values = np.asarray(base_values, dtype=np.float64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.float64).reshape(rows, -1)
    names = list(feature_names)
    outputs = (
        Tensor("contributions", contributions, "FP64"),
        Tensor("base_values", base_values, "FP64"),
        Tensor("predictions", predictions, "FP64", {"output_space": output_space}),
        Tensor("feature_names", np.array([n.encode() for n in names], dtype=object), "BYTES"),
    )
    v1 = {
        "explanations": [
            {
                "feature_names": names,
                "base_values": base_values,
                "contributions": contributions[row],
                "prediction": predictions[row],
            }
            for row in range(rows)
        ],
        "method": method,
        "output_space": output_space,
    }
    return Explanation(method, outputs, v1)
