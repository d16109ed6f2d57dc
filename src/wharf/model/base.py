"""The Model API: what a user subclasses to serve anything.

A model has a name, `load()`, `predict()` and optional `preprocess()`/`postprocess()`; each may be a plain or
an `async` method. Plain methods run in a worker thread, so they never block the server's event loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from wharf.errors import InvalidInput, Unimplemented
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor, TensorSpec


class Model:
    """Base class of every served model.

    Subclasses override `load` and `predict`. `predict` receives what `preprocess` returned (by default the
    `InferRequest`) and may return an `InferResponse`, a mapping of output name to array, or one array.

    `explain` is optional. It answers every explain protocol when it returns a `wharf.protocol.explanation
    .Explanation` (V1 `:explain` gets its V1 body, V2 `/explain` and gRPC `{name}-explainer` its tensors); an
    `InferResponse` answers V2 and gRPC; any other JSON answers V1 `:explain` only. A model whose V1 `:explain`
    body the V1 decoder refuses (KServe's ART explainer takes `{"instances": [image, label]}`, ragged rows) reads
    the body itself by overriding `v1_explain_request`.
    """

    #: Framework name reported as the model's `platform` in metadata.
    platform: str = "custom"
    #: When True, request inputs must match the names `inputs()` declares.
    strict_inputs: bool = True
    #: Whether requests may be merged along their first axis into one `predict` call (when batching is on).
    supports_batching: bool = True
    #: Batching for this model; None takes the server's setting (`max_batch_size` 1 turns batching off).
    max_batch_size: int | None = None
    max_batch_latency_ms: float | None = None

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version
        self.ready = False

    def load(self) -> Any:
        """Load weights or other state; called once before the model serves."""

    def unload(self) -> Any:
        """Release what `load` acquired."""

    def preprocess(self, request: InferRequest) -> Any:
        return request

    def predict(self, payload: Any) -> Any:
        raise NotImplementedError(f"model {self.name!r} does not implement predict()")

    def postprocess(self, result: Any) -> Any:
        return result

    def explain(self, payload: Any) -> Any:
        """Explain the predictions for `payload` (what `preprocess` returned): an `Explanation`, an `InferResponse`,
        or any JSON object or list (numpy arrays allowed; V1 only). A model that does not override it answers 501."""
        raise NotImplementedError(f"model {self.name!r} does not implement explain()")

    def v1_explain_request(self, document: dict[str, Any]) -> InferRequest:
        """The request `explain` is asked of, read from a V1 `:explain` body (`document`, the parsed JSON object);
        raise ValueError or TypeError for a body that does not fit (400). Not overridden: the V1 decoder reads it,
        as it reads `:predict`."""
        raise NotImplementedError(f"model {self.name!r} reads V1 :explain bodies with the V1 decoder")

    def inputs(self) -> list[TensorSpec]:
        """Declared input tensors (empty: undeclared, anything is accepted)."""
        return []

    def outputs(self) -> list[TensorSpec]:
        """Declared output tensors."""
        return []


def overrides(model: Model, method: str) -> bool:
    """Whether `model`'s class replaces `Model.method`."""
    return getattr(type(model), method) is not getattr(Model, method)


def unexplained(model: str) -> Unimplemented:
    """The error (501) answering an explanation asked of `model`, which has none: it says how to get one."""
    return Unimplemented(
        f"model '{model}' does not explain its predictions; add spec.explainer to its InferenceService "
        "(shap or art) or override Model.explain"
    )


def is_async(model: Model, method: str) -> bool:
    return inspect.iscoroutinefunction(getattr(model, method))


def check_inputs(model: Model, request: InferRequest) -> None:
    """Reject missing or unexpected inputs when the model declares its inputs strictly."""
    if not model.strict_inputs:
        return
    declared = model.inputs()
    if not declared:
        return
    expected = {spec.name for spec in declared}
    given = {t.name for t in request.inputs}
    if given - expected:
        raise InvalidInput(
            f"unexpected input(s) {sorted(given - expected)} for model '{model.name}'; it takes {sorted(expected)}"
        )
    if expected - given:
        raise InvalidInput(f"missing input(s) {sorted(expected - given)} for model '{model.name}'")


def to_response(model: Model, result: Any, request: InferRequest) -> InferResponse:
    """Normalise what a model returned into an `InferResponse` answering `request`."""
    if isinstance(result, InferResponse):
        response = result
    else:
        if isinstance(result, Mapping):
            items = list(result.items())
        else:
            declared = model.outputs()
            items = [(declared[0].name if declared else "output-0", result)]
        response = InferResponse(
            model_name=model.name, outputs=[Tensor(name, np.asarray(value)) for name, value in items]
        )
    response.model_name = model.name
    response.model_version = model.version
    response.id = request.id
    if request.outputs is not None:
        response.outputs = _select(response.outputs, [o.name for o in request.outputs], model.name)
    return response


def _select(outputs: list[Tensor], names: list[str], model: str) -> list[Tensor]:
    by_name = {t.name: t for t in outputs}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InvalidInput(f"model '{model}' has no output(s) {missing}; it produces {sorted(by_name)}")
    return [by_name[n] for n in names]


def bind_inputs(model: Model, request: InferRequest, names: Sequence[str], required: int | None = None) -> list[Tensor]:
    """The request's inputs in the order of `names`, for a model that takes its inputs positionally.

    Inputs are matched by name when every one carries a name from `names`, else by position. The first `required`
    names (all of them by default) must be given; a later one may be left out only with those after it.
    """
    required = len(names) if required is None else required
    given = {t.name: t for t in request.inputs}
    if given.keys() <= set(names):
        missing = [n for n in names[: max(required, len(given))] if n not in given]
        if missing:
            raise InvalidInput(f"missing input(s) {missing} for model '{model.name}'; it takes {list(names)}")
        return [given[n] for n in names[: len(given)]]
    if not required <= len(given) <= len(names):
        count = len(names) if required == len(names) else f"{required} to {len(names)}"
        raise InvalidInput(
            f"model '{model.name}' takes {count} input(s) {list(names)}, got {len(given)}: {list(given)}"
        )
    return list(request.inputs)
