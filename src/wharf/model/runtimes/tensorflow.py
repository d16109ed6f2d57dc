"""TensorFlow runtime: SavedModel directories and Keras `.keras` files.

A SavedModel is served through its signatures: `serving_default` unless the request parameter `signature_name`
names another; inputs and outputs are the signature's, by name (a request may also give them in the signature's
order under other names), and metadata describes the default signature. A `.keras` model takes `model.inputs`
and produces its outputs under their names (the keys of a dict output, else the output layers' names).

Inputs are checked against the declared shapes and cast to the declared dtype (JSON numbers arrive as FP64).
TensorFlow's thread pools are sized by `TensorFlowSettings` (environment prefix `WHARF_TF_`), once per process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.errors import InvalidInput, ModelLoadError
from wharf.model.base import Model, bind_inputs
from wharf.protocol.tensors import datatype_of
from wharf.protocol.v2 import InferRequest, Tensor, TensorSpec

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # read when TensorFlow is imported: keep its C++ logging quiet
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

DEFAULT_SIGNATURE = "serving_default"


class TensorFlowSettings(BaseSettings):
    """TensorFlow's thread pools (environment prefix `WHARF_TF_`); 0 leaves the choice to TensorFlow.

    They are fixed when TensorFlow first runs: every model a process serves must ask for the same.
    """

    model_config = SettingsConfigDict(env_prefix="WHARF_TF_", extra="forbid")

    intra_op_threads: int = Field(0, ge=0, description="threads that share the work of one operation")
    inter_op_threads: int = Field(0, ge=0, description="threads that run independent operations in parallel")


@dataclass(frozen=True, slots=True)
class Port:
    """One declared input or output: its name, dtype and shape (None: a variable dimension or rank)."""

    name: str
    dtype: tf.DType
    shape: tf.TensorShape

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype.as_numpy_dtype)

    @property
    def spec(self) -> TensorSpec:
        dims = self.shape.as_list() if self.shape.rank is not None else [None]
        return TensorSpec(self.name, datatype_of(np.empty(0, self.numpy_dtype)), [-1 if d is None else d for d in dims])


@dataclass(frozen=True, slots=True)
class Signature:
    """A callable taking the inputs in declared order and returning outputs by name."""

    call: Callable[[list[Any]], Mapping[str, Any]]
    inputs: list[Port]
    outputs: list[Port]


class TensorFlowModel(Model):
    platform = "tensorflow"
    strict_inputs = False

    def __init__(
        self, name: str, artifact: Path, version: str | None = None, settings: TensorFlowSettings | None = None
    ) -> None:
        super().__init__(name, version)
        self.artifact = artifact
        self.settings = settings or TensorFlowSettings()
        self.signatures: dict[str, Signature] = {}

    def load(self) -> None:
        try:
            _size_thread_pools(self.settings)
            if self.artifact.is_dir():
                self.signatures = _saved_model_signatures(tf.saved_model.load(str(self.artifact)))
            else:
                model = keras.saving.load_model(self.artifact, compile=False)
                self.signatures = {DEFAULT_SIGNATURE: _keras_signature(model)}
        except (OSError, ValueError, TypeError, RuntimeError, tf.errors.OpError) as e:
            raise ModelLoadError(f"cannot load TensorFlow model from {self.artifact}: {e}") from e
        if DEFAULT_SIGNATURE not in self.signatures:
            raise ModelLoadError(
                f"{self.artifact} has no '{DEFAULT_SIGNATURE}' signature; it has {sorted(self.signatures)}"
            )

    def inputs(self) -> list[TensorSpec]:
        return [port.spec for port in self.signatures[DEFAULT_SIGNATURE].inputs]

    def outputs(self) -> list[TensorSpec]:
        return [port.spec for port in self.signatures[DEFAULT_SIGNATURE].outputs]

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        signature = self._signature(payload)
        bound = bind_inputs(self, payload, [port.name for port in signature.inputs])
        arrays = [self._conform(tensor, port) for tensor, port in zip(bound, signature.inputs)]
        try:
            result = signature.call(arrays)
        except tf.errors.InvalidArgumentError as e:
            raise InvalidInput(f"model '{self.name}' rejected the input: {_cause(e)}") from e
        return {name: np.asarray(value) for name, value in result.items()}

    def _signature(self, request: InferRequest) -> Signature:
        name = request.parameters.get("signature_name", DEFAULT_SIGNATURE)
        if name not in self.signatures:
            raise InvalidInput(f"model '{self.name}' has no signature {name!r}; it has {sorted(self.signatures)}")
        return self.signatures[name]

    def _conform(self, tensor: Tensor, port: Port) -> np.ndarray:
        """The request array checked against `port` and cast to its dtype."""
        array = tensor.data
        if not port.shape.is_compatible_with(array.shape):
            raise InvalidInput(
                f"input '{tensor.name}' of model '{self.name}' must have shape {port.spec.shape}, got {tensor.shape}"
            )
        wanted = port.numpy_dtype
        text_wanted, text_given = wanted.kind == "O", array.dtype.kind == "O"
        if text_wanted != text_given or not (text_given or np.can_cast(array.dtype, wanted, "same_kind")):
            raise InvalidInput(
                f"input '{tensor.name}' of model '{self.name}' must be {port.spec.datatype}, got {tensor.datatype}"
            )
        return array if text_given else array.astype(wanted, copy=False)


def _size_thread_pools(settings: TensorFlowSettings) -> None:
    """Apply the thread settings; TensorFlow raises RuntimeError for a change once it has started."""
    pools = tf.config.threading
    if settings.intra_op_threads:
        pools.set_intra_op_parallelism_threads(settings.intra_op_threads)
    if settings.inter_op_threads:
        pools.set_inter_op_parallelism_threads(settings.inter_op_threads)


def _cause(error: tf.errors.OpError) -> str:
    """The op's own message, without the graph locations TensorFlow wraps around it."""
    lines = [line.strip() for line in error.message.splitlines()]
    noise = ("[[", "Detected at", "<stack", "Graph execution")
    causes = [line for line in lines if line and not line.startswith(noise)]
    return causes[-1] if causes else error.message


def _port(name: str, dtype: Any, shape: Any) -> Port:
    return Port(name, tf.as_dtype(dtype), tf.TensorShape(shape))


def _saved_model_signatures(loaded: Any) -> dict[str, Signature]:
    return {name: _saved_model_signature(function) for name, function in loaded.signatures.items()}


def _saved_model_signature(function: Any) -> Signature:
    _, specs = function.structured_input_signature
    inputs = [_port(name, spec.dtype, spec.shape) for name, spec in specs.items()]
    outputs = [_port(name, spec.dtype, spec.shape) for name, spec in function.structured_outputs.items()]

    def call(arrays: list[Any]) -> Mapping[str, Any]:
        return function(**{port.name: tf.constant(a, port.dtype) for port, a in zip(inputs, arrays)})

    return Signature(call, inputs, outputs)


def _keras_signature(model: Any) -> Signature:
    if not getattr(model, "inputs", None):
        raise ValueError("a subclassed Keras model without declared inputs cannot be served; export a SavedModel")
    inputs = [_port(t.name, t.dtype, t.shape) for t in model.inputs]
    # a Sequential model has one output, named here after its last layer; a functional one keeps its structure
    structure = {model.layers[-1].name: model.outputs[0]} if isinstance(model, keras.Sequential) else model.output
    if isinstance(structure, Mapping):
        names, tensors = list(structure), list(structure.values())
    else:
        tensors = list(structure) if isinstance(structure, (list, tuple)) else [structure]
        layer_names = model.output_names or []
        names = layer_names if len(layer_names) == len(tensors) else [f"output-{i}" for i in range(len(tensors))]
    outputs = [_port(name, t.dtype, t.shape) for name, t in zip(names, tensors)]

    def call(arrays: list[Any]) -> Mapping[str, Any]:
        result = model.predict_on_batch(arrays if len(arrays) > 1 else arrays[0])
        if isinstance(result, Mapping):
            return result
        return dict(zip(names, result if isinstance(result, (list, tuple)) else [result]))

    return Signature(call, inputs, outputs)


def create(name: str, artifact: Path, version: str | None = None) -> TensorFlowModel:
    return TensorFlowModel(name, artifact, version, TensorFlowSettings())
