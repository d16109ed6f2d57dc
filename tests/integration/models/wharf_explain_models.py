"""Models whose `explain` answers an `Explanation`, served by tests/integration/test_explain_protocol.py."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from wharf import InferRequest, Model, Tensor, TensorSpec
from wharf.protocol.explanation import Explanation


class Linear(Model):
    """Scores rows of 3 features (input `x`) with fixed weights; explains them with each feature's contribution,
    the base value (0) and the score, after sleeping EXPLAIN_SLEEP_S seconds (environment)."""

    weights = np.array([0.5, -1.0, 2.0])

    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec("x", "FP64", [-1, 3])]

    def predict(self, payload: InferRequest) -> np.ndarray:
        return self._rows(payload) @ self.weights

    def explain(self, payload: InferRequest) -> Explanation:
        time.sleep(float(os.environ.get("EXPLAIN_SLEEP_S", "0")))
        contributions = self._rows(payload) * self.weights
        scores = contributions.sum(axis=1)
        return Explanation(
            method="test.linear",
            outputs=(
                Tensor("contributions", contributions),
                Tensor("base_value", np.zeros(len(scores))),
                Tensor("prediction", scores),
            ),
            v1={"explanations": [{"contributions": c, "score": float(s)} for c, s in zip(contributions, scores)]},
        )

    def _rows(self, payload: InferRequest) -> np.ndarray:
        x = payload.named()["x"].astype(np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.weights):
            raise ValueError(f"rows must have {len(self.weights)} features, got shape {list(x.shape)}")
        return x


class Mirror(Model):
    """Explains an image and its label as KServe's ART explainer is asked (V1 `{"instances": [image, label]}`,
    read by `v1_explain_request`): the "adversarial example" is the image negated."""

    strict_inputs = False

    def predict(self, payload: InferRequest) -> np.ndarray:
        return payload.named()["image"].sum(keepdims=True)

    def v1_explain_request(self, document: dict[str, Any]) -> InferRequest:
        instances = document.get("instances")
        if not isinstance(instances, list) or len(instances) != 2:
            raise ValueError("'instances' must be [image, label]")
        image, label = instances
        return InferRequest(
            inputs=[Tensor("image", np.asarray(image, np.float64)), Tensor("label", np.asarray([label]))]
        )

    def explain(self, payload: InferRequest) -> Explanation:
        image, label = payload.named()["image"], payload.named()["label"]
        adversarial = -image
        return Explanation(
            method="test.mirror",
            outputs=(Tensor("adversarial_example", adversarial), Tensor("label", label)),
            v1={"explanations": {"adversarial_example": adversarial.tolist(), "label": label.tolist()}},
        )
