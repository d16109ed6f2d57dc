"""KServe custom predictors, served unchanged: a subclass of `kserve.Model` named as `module:Class`.

The class is built with the model's name, as KServe users build theirs, and `load()` is called once; it must leave
`self.ready` True, as KServe's server requires before it registers a model (then `start()` runs, `stop()` at
unload). Each request goes through the predictor's own steps as KServe's `Model.__call__` runs them:
`preprocess(payload, headers)`, `validate(payload)`, `predict(payload, headers)` (with a third `response_headers`
dict when the predictor asks for one), `postprocess(result, headers)`. Async steps run on the server's event loop,
plain ones in a worker thread; `headers` are the request's (lower-case names).

What a step is handed is what KServe hands it:
- a V1 request (`/v1/models/NAME:predict`) arrives as the V1 dict: `{"instances": [...]}` (rows of one input, or
  one object per row naming its inputs, as the request named them; a columnar `inputs` object arrives as rows
  too) with `"parameters"` when the request had them. The answer is a dict with `"predictions"`, a list of rows (or
  of objects naming several outputs), or what a kserve `InferResponse` holds; other keys of an answer are dropped.
- a V2 request (REST or gRPC) arrives as a `kserve.protocol.infer_type.InferRequest` (inputs with their data as
  lists, BYTES as text, as KServe's REST server decodes them), and the answer is a kserve `InferResponse`, or
  anything a Wharf model may answer (arrays, a mapping of them).
`explain(payload, headers)` serves `:explain` when the class overrides it. KServe's response headers, engines
(`start_engine`) and predictor hosts (a KServe transformer calling its predictor) are not carried over: a Wharf
transformer is the `wharf.Transformer` class.

The class is recognised by its ancestry (`kserve.model.Model`), so kserve is imported only for such a class,
which has imported it already. Costs per request: the V1 dict or KServe request built from the decoded tensors,
and the answer converted back (a copy of the data each way).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from wharf.errors import ConfigurationError, ModelLoadError, WharfError
from wharf.model import context
from wharf.model.base import Model, unexplained
from wharf.protocol import tensors, v1
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor, TensorSpec

_KSERVE_MODEL = ("kserve.model", "Model")
_V1_INPUT = "input-0"  # the name the REST transport gives the rows of a model's one undeclared input


def is_kserve_model(cls: Any) -> bool:
    """Whether `cls` is a subclass of `kserve.Model`, told without importing kserve."""
    return isinstance(cls, type) and any((c.__module__, c.__qualname__) == _KSERVE_MODEL for c in cls.__mro__)


def create(cls: type, name: str, version: str | None = None) -> KServeModel:
    """The Wharf model serving an instance of the `kserve.Model` subclass `cls`, named `name`."""
    try:
        predictor = cls(name)
    except TypeError as e:
        raise ConfigurationError(
            f"cannot build KServe model {cls.__module__}:{cls.__qualname__} with its name alone ({e}); "
            "its __init__ must take the name as its one required argument"
        ) from e
    return KServeModel(predictor, version)


class KServeModel(Model):
    """A `kserve.Model` instance behind Wharf's model API (see the module docstring)."""

    platform = "kserve"
    strict_inputs = False  # KServe does not check the inputs a predictor declares
    supports_batching = False  # the predictor is handed one request at a time, as in KServe

    def __init__(self, predictor: Any, version: str | None = None) -> None:
        super().__init__(predictor.name, version)
        self.predictor = predictor
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []

    # -- lifecycle --------------------------------------------------------------------------------------------
    def load(self) -> None:
        self.predictor.load()
        if not self.predictor.ready:
            raise ModelLoadError(
                f"KServe model '{self.name}': load() left self.ready False (KServe serves only ready models; "
                "set self.ready = True at the end of load)"
            )
        self.predictor.start()
        self._inputs = _specs(self.predictor.get_input_types, "get_input_types", self.name)
        self._outputs = _specs(self.predictor.get_output_types, "get_output_types", self.name)

    def unload(self) -> None:
        self.predictor.stop()

    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    # -- requests ---------------------------------------------------------------------------------------------
    async def predict(self, payload: InferRequest) -> Any:
        predictor, headers = self.predictor, context.request_headers()
        body = self._v1_body(payload) if payload.protocol == "v1" else self._kserve_request(payload)
        step = await _run(predictor.preprocess, body, headers)
        step = predictor.validate(step)
        if predictor.required_response_headers:
            result = await _run(predictor.predict, step, headers, {})
            result = await _run(predictor.postprocess, result, headers, {})
        else:
            result = await _run(predictor.predict, step, headers)
            result = await _run(predictor.postprocess, result, headers)
        return _answer(result, payload.protocol == "v1", self.name)

    async def explain(self, payload: InferRequest) -> Any:
        predictor = self.predictor
        if not _overrides(predictor, "explain"):
            raise unexplained(self.name)
        headers = context.request_headers()
        body = self._v1_body(payload) if payload.protocol == "v1" else self._kserve_request(payload)
        step = predictor.validate(await _run(predictor.preprocess, body, headers))
        return await _run(predictor.explain, step, headers)

    def _v1_body(self, request: InferRequest) -> dict[str, Any]:
        """The V1 dict KServe would hand the predictor for `request` (decoded from a V1 body)."""
        inputs = request.inputs
        declared = self._inputs[0].name if self._inputs else _V1_INPUT
        if len(inputs) == 1 and inputs[0].name == declared:
            instances: list[Any] = _rows(inputs[0].data)
        else:
            columns = {t.name: _rows(t.data) for t in inputs}
            count = len(inputs[0].data) if inputs[0].data.ndim else 0
            instances = [{name: rows[i] for name, rows in columns.items()} for i in range(count)]
        body: dict[str, Any] = {"instances": instances}
        if request.parameters:
            body["parameters"] = request.parameters
        return body

    def _kserve_request(self, request: InferRequest) -> Any:
        """The kserve `InferRequest` KServe's REST server would hand the predictor for `request`."""
        from kserve.protocol.infer_type import InferInput, RequestedOutput
        from kserve.protocol.infer_type import InferRequest as KServeRequest

        inputs = []
        for tensor in request.inputs:
            data = tensor.data
            if data.dtype.kind in "OSU":  # text, as KServe decodes JSON; bytes where they are not UTF-8
                values = tensors.to_texts(data) or list(data.reshape(-1))
            else:
                values = data.reshape(-1).tolist()
            inputs.append(
                InferInput(tensor.name, list(data.shape), tensor.datatype, values, dict(tensor.parameters or {}))
            )
        outputs = [RequestedOutput(o.name, o.parameters) for o in request.outputs] if request.outputs else None
        return KServeRequest(
            model_name=self.name,
            infer_inputs=inputs,
            request_id=request.id,
            parameters=request.parameters or None,
            request_outputs=outputs,
            model_version=self.version,
        )


async def _run(step: Callable[..., Any], *args: Any) -> Any:
    """A predictor's step: awaited when async, else run in a worker thread (with the request's context)."""
    if inspect.iscoroutinefunction(step):
        return await step(*args)
    result = await asyncio.to_thread(step, *args)
    return await result if inspect.isawaitable(result) else result


def _overrides(predictor: Any, method: str) -> bool:
    """Whether the predictor's class defines `method` (rather than inheriting kserve's `Model`'s)."""
    for cls in type(predictor).__mro__:
        if (cls.__module__, cls.__qualname__) == _KSERVE_MODEL:
            return False
        if method in vars(cls):
            return True
    return False


def _rows(data: np.ndarray) -> Any:
    """A tensor's values as the JSON a V1 body held: nested lists, BYTES as text (or `{"b64": ...}`)."""
    nested = v1.nested_json(data)
    return nested.tolist() if isinstance(nested, np.ndarray) else nested


def _specs(method: Callable[[], Any], name: str, model: str) -> list[TensorSpec]:
    """The tensors a predictor declares by `get_input_types()`/`get_output_types()` (KServe's metadata)."""
    if inspect.iscoroutinefunction(method):
        return []  # declared asynchronously: left out of the metadata
    declared = method() or []
    try:
        return [TensorSpec(d["name"], d["datatype"], list(d["shape"])) for d in declared]
    except (KeyError, TypeError) as e:
        raise ModelLoadError(f"KServe model '{model}': {name}() must give dicts of name, datatype, shape: {e}") from e


def _answer(result: Any, is_v1: bool, model: str) -> Any:
    """What the predictor answered, as a Wharf model's answer: an `InferResponse`, or a mapping of arrays."""
    if type(result).__name__ == "InferResponse" and type(result).__module__.startswith("kserve."):
        return InferResponse(model, [_tensor(o) for o in result.outputs], parameters=_plain(result.parameters))
    if isinstance(result, Mapping) and not is_v1 and "predictions" not in result:
        return {name: _array(value, model) for name, value in result.items()}
    if isinstance(result, Mapping):
        if "predictions" not in result:
            raise WharfError(f"KServe model '{model}' answered a V1 request without 'predictions': {sorted(result)}")
        result = result["predictions"]
    if isinstance(result, list) and result and all(isinstance(row, Mapping) for row in result):
        names = list(result[0])
        return {name: _array([row.get(name) for row in result], model) for name in names}
    return {"predictions" if is_v1 else "output-0": _array(result, model)}


def _tensor(output: Any) -> Tensor:
    """A kserve `InferOutput` as a Wharf tensor."""
    return Tensor(output.name, output.as_numpy(), output.datatype, _plain(output.parameters))


def _plain(parameters: Any) -> dict[str, Any] | None:
    return dict(parameters) if parameters else None


def _array(value: Any, model: str) -> np.ndarray:
    """An answer's value as an array; text stays text (BYTES)."""
    try:
        array = np.asarray(value)
    except ValueError:
        raise WharfError(f"KServe model '{model}' answered a ragged list, which is not a tensor") from None
    if array.dtype.kind == "O" and any(isinstance(v, Mapping | list) for v in array.reshape(-1)):
        raise WharfError(f"KServe model '{model}' answered values that are not a tensor of numbers or text")
    if array.dtype.kind == "U":
        array = array.astype(object)
    return array
