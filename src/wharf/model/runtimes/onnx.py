"""ONNX runtime: graphs run by onnxruntime, on CUDA where onnxruntime offers it, else on the CPU.

The model's inputs and outputs are the graph's own: names, element types as protocol datatypes, and shapes with
-1 for symbolic or unknown dimensions. Request data is checked against them and cast to the declared element
type where no value changes meaning (numbers to a float type, integers in range to another integer type).
A sequence of maps (e.g. skl2onnx's ZipMap of class probabilities) is returned as a matrix, a column per key.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.errors import InvalidInput, ModelLoadError
from wharf.model.base import Model
from wharf.protocol.tensors import DTYPES
from wharf.protocol.v2 import InferRequest, Tensor, TensorSpec

log = logging.getLogger(__name__)

#: ONNX element type (as onnxruntime spells it) -> protocol datatype.
DATATYPES = {
    "float": "FP32",
    "double": "FP64",
    "float16": "FP16",
    "bool": "BOOL",
    "string": "BYTES",
    **{f"{sign}int{bits}": f"{sign.upper()}INT{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)},
}
_TENSOR = re.compile(r"tensor\((\w+)\)")
_MAP_SEQUENCE = re.compile(r"seq\(map\(\w+,\s*tensor\((\w+)\)\)\)")
PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class ONNXSettings(BaseSettings):
    """onnxruntime session settings (environment prefix `WHARF_ONNX_`); 0 leaves the choice to onnxruntime."""

    model_config = SettingsConfigDict(env_prefix="WHARF_ONNX_", extra="forbid")

    intra_op_threads: int = Field(0, ge=0, description="threads that share the work of one operator")
    inter_op_threads: int = Field(0, ge=0, description="above 1, independent operators run in parallel threads")


@dataclass(frozen=True, slots=True)
class _GraphInput:
    spec: TensorSpec
    #: Dimensions as the graph declares them: a size, a symbol, or None when unknown.
    dims: tuple[int | str | None, ...]


class ONNXModel(Model):
    platform = "onnx"
    strict_inputs = True

    def __init__(
        self, name: str, artifact: Path, version: str | None = None, settings: ONNXSettings | None = None
    ) -> None:
        super().__init__(name, version)
        self.artifact = artifact
        self.settings = settings or ONNXSettings()
        self.session: Any = None
        self._inputs: list[_GraphInput] = []
        self._outputs: dict[str, TensorSpec] = {}
        #: Outputs that onnxruntime returns as a sequence of maps, and the numpy type of their values.
        self._map_sequences: dict[str, np.dtype] = {}

    def load(self) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.settings.intra_op_threads
        options.inter_op_num_threads = self.settings.inter_op_threads
        if self.settings.inter_op_threads > 1:
            options.execution_mode = onnxruntime.ExecutionMode.ORT_PARALLEL
        available = onnxruntime.get_available_providers()
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.artifact), options, providers=[p for p in PROVIDERS if p in available]
            )
        except Exception as e:
            raise ModelLoadError(f"cannot load ONNX model from {self.artifact}: {e}") from e
        self._inputs = [self._graph_input(node) for node in self.session.get_inputs()]
        self._outputs = {node.name: self._graph_output(node) for node in self.session.get_outputs()}
        log.info("onnxruntime session created", extra={"model": self.name, "providers": self.session.get_providers()})

    def _graph_input(self, node: Any) -> _GraphInput:
        found = _TENSOR.fullmatch(node.type)
        if found is None or found[1] not in DATATYPES:
            raise ModelLoadError(f"model '{self.name}': input '{node.name}' is a {node.type}, which cannot be served")
        return _GraphInput(TensorSpec(node.name, DATATYPES[found[1]], _shape(node.shape)), tuple(node.shape))

    def _graph_output(self, node: Any) -> TensorSpec:
        found = _TENSOR.fullmatch(node.type)
        if found and found[1] in DATATYPES:
            return TensorSpec(node.name, DATATYPES[found[1]], _shape(node.shape))
        found = _MAP_SEQUENCE.fullmatch(node.type)
        if found and found[1] in DATATYPES:
            self._map_sequences[node.name] = DTYPES[DATATYPES[found[1]]]
            return TensorSpec(node.name, DATATYPES[found[1]], [-1, -1])
        raise ModelLoadError(f"model '{self.name}': output '{node.name}' is a {node.type}, which cannot be served")

    def inputs(self) -> list[TensorSpec]:
        return [graph_input.spec for graph_input in self._inputs]

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs.values())

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        given = {tensor.name: tensor for tensor in payload.inputs}
        sizes: dict[str, int] = {}
        feeds = {node.spec.name: self._fit(node, given[node.spec.name], sizes) for node in self._inputs}
        names = self._output_names(payload)
        try:
            results = self.session.run(names, feeds)
        except InvalidArgument as e:
            raise InvalidInput(f"model '{self.name}' rejected the input: {e}") from None
        return {
            name: _matrix(result, self._map_sequences[name]) if name in self._map_sequences else result
            for name, result in zip(names, results)
        }

    def _output_names(self, request: InferRequest) -> list[str]:
        if request.outputs is None:
            return list(self._outputs)
        wanted = [o.name for o in request.outputs]
        unknown = [name for name in wanted if name not in self._outputs]
        if unknown:
            raise InvalidInput(f"model '{self.name}' has no output(s) {unknown}; it produces {list(self._outputs)}")
        return wanted

    def _fit(self, graph_input: _GraphInput, tensor: Tensor, sizes: dict[str, int]) -> np.ndarray:
        """`tensor`'s data checked against the graph input's shape (symbols bound in `sizes`) and cast to its type."""
        spec, data = graph_input.spec, tensor.data
        where = f"input '{spec.name}' of model '{self.name}'"
        if data.ndim != len(spec.shape) or any(d not in (-1, n) for d, n in zip(spec.shape, data.shape)):
            raise InvalidInput(f"{where} takes shape {spec.shape}, got {list(data.shape)}")
        for dim, size in zip(graph_input.dims, data.shape):
            if isinstance(dim, str) and sizes.setdefault(dim, size) != size:
                raise InvalidInput(f"{where}: dimension '{dim}' is {size} here but {sizes[dim]} in another input")
        return _cast(data, spec.datatype, tensor.datatype, where)


def _shape(dims: list[int | str | None]) -> list[int]:
    """Protocol shape of graph dimensions: -1 for a symbolic or unknown one."""
    return [d if isinstance(d, int) else -1 for d in dims]


def _cast(data: np.ndarray, datatype: str, given: str, where: str) -> np.ndarray:
    """`data` as the numpy type of `datatype`, where each value keeps its meaning; else InvalidInput."""
    dtype, kind = DTYPES[datatype], data.dtype.kind
    if datatype == "BYTES" and kind == "O":
        return _text(data, where)
    if data.dtype == dtype:
        return data
    if dtype.kind == "f" and kind in "biuf":
        return data.astype(dtype)
    if dtype.kind in "iu" and kind in "biu":
        limits = np.iinfo(dtype)
        if data.size and (data.min() < limits.min or data.max() > limits.max):
            raise InvalidInput(f"{where}: a value is out of range for {datatype}")
        return data.astype(dtype)
    raise InvalidInput(f"{where} takes {datatype}, got {given}")


def _text(data: np.ndarray, where: str) -> np.ndarray:
    """BYTES data as the str objects onnxruntime takes for string tensors."""
    try:
        items = [item.decode() if isinstance(item, bytes) else str(item) for item in data.reshape(-1)]
    except UnicodeDecodeError:
        raise InvalidInput(f"{where} takes UTF-8 text") from None
    text = np.empty(len(items), dtype=object)
    text[:] = items
    return text.reshape(data.shape)


def _matrix(rows: list[dict[Any, Any]], dtype: np.dtype) -> np.ndarray:
    """A sequence of maps as a matrix: a row per map, a column per key (the maps share their keys)."""
    return np.array([list(row.values()) for row in rows], dtype=dtype).reshape(len(rows), -1)


def create(name: str, artifact: Path, version: str | None = None) -> ONNXModel:
    return ONNXModel(name, artifact, version, ONNXSettings())
