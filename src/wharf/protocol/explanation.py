"""An explanation of a model's predictions, in the two shapes Wharf's protocols carry it.

KServe's V1 `:explain` answers any JSON object; Wharf's V2 explain extension (`/v2/models/{name}/explain`, and gRPC
ModelInfer on `{name}-explainer`) answers an ordinary V2 infer response whose output tensors are the explanation,
with the method in the response's `parameters` (`explainer`). An explanation method builds both views at once,
since each knows its own V1 spelling (KServe's ART explainer's keys, say) and its tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wharf.protocol.v2 import InferResponse, Tensor

#: The V2 response parameter naming the method that made an explanation.
METHOD_PARAMETER = "explainer"
#: The server metadata extension (`GET /v2`, ServerMetadata) of a server that answers V2 explain requests.
EXTENSION = "explain"
#: V2 infer (REST) or ModelInfer (gRPC) on `{name}-explainer`, where no model has that name, explains `{name}`.
EXPLAINER_SUFFIX = "-explainer"


@dataclass(frozen=True, slots=True)
class Explanation:
    """What an explanation method answers: its name (`shap.tree`, `art.SquareAttack`), its tensors, its V1 body."""

    method: str
    outputs: tuple[Tensor, ...]
    v1: dict[str, Any]

    def response(
        self, model_name: str, model_version: str | None = None, request_id: str | None = None
    ) -> InferResponse:
        """The V2 infer response carrying this explanation."""
        return InferResponse(
            model_name=model_name,
            outputs=list(self.outputs),
            model_version=model_version,
            id=request_id,
            parameters={METHOD_PARAMETER: self.method},
        )
