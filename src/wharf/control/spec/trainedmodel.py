"""KServe's `serving.kserve.io/v1alpha1` TrainedModel: one model served by a multi-model InferenceService.

    apiVersion: serving.kserve.io/v1alpha1
    kind: TrainedModel
    metadata: {name: model1-sklearn}
    spec:
      inferenceService: sklearn-mms        # the parent, in the same namespace
      model:
        storageUri: s3://models/model1     # where its artifacts are
        framework: sklearn                 # the model format the parent's runtime must serve
        memory: 256Mi                      # what the model declares it needs (a Kubernetes quantity)

Every field is required, as in KServe's CRD. The parent is an InferenceService whose predictor names a model
format and no `storageUri` (KServe's `IsMMSPredictor`); whether it is one, whether its format is the framework and
whether the memory fits one replica's budget (`replica_budget`) are the parent's facts, read when the model is placed and reported in
the TrainedModel's status (`wharf.control.trained_models`), as KServe's controller does: a wrong parent never stops
the apply of the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field

from wharf.control.spec.common import Problem, SpecModel, TopLevelResource, check_resource_name, parse_quantity
from wharf.control.spec.inferenceservice import _storage_problems
from wharf.model.runtimes import RUNTIMES

API_VERSION = "serving.kserve.io/v1alpha1"
KIND = "TrainedModel"
#: A multi-model replica's budget for its models (bytes or a quantity), as the predictor's `env` may set it; unset,
#: it is MODEL_MEMORY_SHARE of the predictor's `resources.limits.memory` (the rest is the model server's own, and
#: the limit kills the whole replica).
BUDGET_ENV = "WHARF_MEMORY_BUDGET"
MODEL_MEMORY_SHARE = 0.75


def replica_budget(limit: str | None, env: Mapping[str, str]) -> int | None:
    """The bytes a multi-model replica's models may take, from its memory `limit` and its `env`; None: no budget.
    Raises ValueError for a value that is no quantity."""
    if given := env.get(BUDGET_ENV):
        return int(parse_quantity(given))
    return int(parse_quantity(limit) * MODEL_MEMORY_SHARE) if limit else None


class TrainedModelModel(SpecModel):
    """Where the model is, its framework and the memory it declares (KServe's v1alpha1 ModelSpec)."""

    storage_uri: str = Field(description="where the model's artifacts are (a path or a URI)")
    framework: str = Field(description="its model format, e.g. sklearn")
    memory: str = Field(description="the memory it declares it needs, a Kubernetes quantity such as 256Mi")

    def _problems(self) -> Iterator[Problem]:
        yield from _storage_problems(self.storage_uri)
        if self.framework.lower() not in RUNTIMES:
            yield ("framework",), f"unknown framework {self.framework!r}; Wharf serves {', '.join(RUNTIMES)}"
        try:
            if parse_quantity(self.memory) <= 0:
                yield ("memory",), "must be more than 0 (e.g. 256Mi)"
        except ValueError as e:
            yield ("memory",), str(e)


class TrainedModelSpec(SpecModel):
    inference_service: str = Field(description="the multi-model InferenceService it is served by")
    model: TrainedModelModel

    def _problems(self) -> Iterator[Problem]:
        try:
            check_resource_name(self.inference_service)
        except ValueError as e:
            yield ("inferenceService",), f"an InferenceService's name: it {e}"


class TrainedModel(TopLevelResource):
    api_version: Literal["serving.kserve.io/v1alpha1"]
    kind: Literal["TrainedModel"]
    spec: TrainedModelSpec

    def to_manifest(self) -> dict[str, Any]:
        """The manifest as given, the framework in lower case (as model formats are kept)."""
        manifest = self.model_dump(mode="json", exclude_none=True)
        manifest["spec"]["model"]["framework"] = self.spec.model.framework.lower()
        return manifest
