"""PyTorch runtime: TorchScript modules (`.pt`, `.torchscript`) and torch.export programs (`.pt2`).

The module runs on CUDA when a GPU is available, else on the CPU, under `torch.inference_mode()`. Request inputs
are the arguments of `forward()`, by name when the request uses the declared names, else in order. A tensor
result is the output `output-0`, a tuple or list gives `output-0`, `output-1`, ..., a dict gives its keys.

On CUDA, each worker thread runs its calls on a CUDA stream of its own: request tensors go through pinned host
memory to the device without blocking, outputs come back into pinned memory, and the thread waits for its stream
alone (not the whole device), so that model instances on one GPU overlap copies with compute.

A torch.export program records its inputs' dtypes and shapes, so its metadata is complete, inputs are checked
before the call and cast to the recorded dtype (JSON numbers arrive as FP64). A TorchScript module only names its
arguments: its metadata lists no tensors, and floating-point inputs are cast to the dtype of its parameters.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.export.passes import move_to_device_pass

from wharf.errors import InvalidInput, ModelLoadError
from wharf.model.base import Model, bind_inputs
from wharf.protocol.tensors import datatype_of
from wharf.protocol.v2 import InferRequest, Tensor, TensorSpec

# torch.export.load keeps its deserializer in a global: one load at a time
_LOADING = threading.Lock()


class PyTorchModel(Model):
    platform = "pytorch"
    strict_inputs = False

    def __init__(self, name: str, artifact: Path, version: str | None = None) -> None:
        super().__init__(name, version)
        self.artifact = artifact
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.module: Any = None
        self.arguments: list[str] = []
        self.required = 0
        self.input_specs: list[TensorSpec] = []
        self.output_specs: list[TensorSpec] = []
        self.input_dtypes: list[torch.dtype] = []
        self.float_dtype = torch.float32
        self._streams = threading.local()  # each worker thread's CUDA stream

    def load(self) -> None:
        try:
            with _LOADING:
                if self.artifact.suffix == ".pt2":
                    self._load_exported()
                else:
                    self._load_torchscript()
        except (RuntimeError, ValueError, OSError) as e:
            raise ModelLoadError(
                f"cannot load PyTorch model from {self.artifact}: {e}; save it with torch.jit.script(module).save() "
                "(.pt) or torch.export.save() (.pt2)"
            ) from e

    def _load_torchscript(self) -> None:
        self.module = torch.jit.load(str(self.artifact), map_location=self.device).eval()
        arguments = [a for a in self.module.forward.schema.arguments if not isinstance(a.type, torch.ClassType)]
        self.arguments = [a.name for a in arguments]
        self.required = sum(not a.has_default_value() for a in arguments)
        floats = [p.dtype for p in self.module.parameters() if p.is_floating_point()]
        self.float_dtype = floats[0] if floats else torch.float32

    def _load_exported(self) -> None:
        program = torch.export.load(str(self.artifact))
        if self.device.type != "cpu":
            program = move_to_device_pass(program, self.device)
        placeholders = {node.name: node.meta["val"] for node in program.graph.nodes if node.op == "placeholder"}
        examples = [placeholders[name] for name in program.graph_signature.user_inputs]
        self.arguments = list(program.graph_signature.user_inputs)
        self.required = len(self.arguments)
        self.input_dtypes = [example.dtype for example in examples]
        self.input_specs = [_spec(name, example) for name, example in zip(self.arguments, examples)]
        output_node = next(node for node in program.graph.nodes if node.op == "output")
        results = [value.meta["val"] for value in output_node.args[0]]
        names = _output_names(program.call_spec.out_spec, len(results))
        self.output_specs = [_spec(name, result) for name, result in zip(names, results)]
        self.module = program.module()

    def inputs(self) -> list[TensorSpec]:
        return self.input_specs

    def outputs(self) -> list[TensorSpec]:
        return self.output_specs

    def predict(self, payload: InferRequest) -> dict[str, np.ndarray]:
        bound = bind_inputs(self, payload, self.arguments, self.required)
        with torch.inference_mode(), self._stream() as stream:
            arguments = [self._tensor(tensor, index) for index, tensor in enumerate(bound)]
            try:
                result = self.module(*arguments)
            except torch.cuda.OutOfMemoryError:
                raise
            except (RuntimeError, AssertionError) as e:  # torch.export's input guards raise AssertionError
                raise InvalidInput(f"model '{self.name}' rejected the input: {_last_line(e)}") from e
            outputs = {name: _to_host(value) for name, value in _named_outputs(result).items()}
            if stream is not None:
                stream.synchronize()  # the outputs' copies to the host are done
        return {name: _to_numpy(value) for name, value in outputs.items()}

    @contextlib.contextmanager
    def _stream(self) -> Iterator[torch.cuda.Stream | None]:
        """On CUDA, this thread's own stream as the current one (made on the thread's first call); else None."""
        if self.device.type != "cuda":
            yield None
            return
        stream = getattr(self._streams, "stream", None)
        if stream is None:
            stream = self._streams.stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(stream):
            yield stream

    def _tensor(self, tensor: Tensor, index: int) -> torch.Tensor:
        """The request tensor on the model's device, checked against and cast to what the model takes."""
        array = tensor.data
        if array.dtype.kind not in "biuf":
            raise InvalidInput(f"input '{tensor.name}' of model '{self.name}' must be numeric, got {tensor.datatype}")
        value = torch.from_numpy(array if array.flags.writeable else array.copy())
        if self.input_specs:
            spec, target = self.input_specs[index], self.input_dtypes[index]
            if len(spec.shape) != array.ndim or any(d not in (-1, n) for d, n in zip(spec.shape, array.shape)):
                raise InvalidInput(
                    f"input '{tensor.name}' of model '{self.name}' must have shape {spec.shape}, got {tensor.shape}"
                )
            if not torch.can_cast(value.dtype, target):
                raise InvalidInput(
                    f"input '{tensor.name}' of model '{self.name}' must be {spec.datatype}, got {tensor.datatype}"
                )
        else:
            target = self.float_dtype if value.is_floating_point() else value.dtype
        if self.device.type != "cuda":
            return value.to(target)
        # Cast while copying into pinned memory: the copy to the device then runs without blocking this thread.
        staged = torch.empty(value.shape, dtype=target, pin_memory=True).copy_(value)
        return staged.to(self.device, non_blocking=True)


def _spec(name: str, example: torch.Tensor) -> TensorSpec:
    """The spec of a traced tensor: symbolic (dynamic) dimensions are -1."""
    shape = [d if isinstance(d, int) else -1 for d in example.shape]
    return TensorSpec(name, _datatype(example.dtype), shape)


def _datatype(dtype: torch.dtype) -> str:
    # bfloat16 has no numpy dtype; such outputs are served as FP32 (see _to_numpy)
    if dtype == torch.bfloat16:
        return "FP32"
    return datatype_of(torch.empty(0, dtype=dtype).numpy())


def _output_names(spec: Any, count: int) -> list[str]:
    if spec.type is dict and len(spec.context) == count:
        return [str(key) for key in spec.context]
    return [f"output-{i}" for i in range(count)]


def _named_outputs(result: Any) -> Mapping[str, Any]:
    if isinstance(result, Mapping):
        return {str(key): value for key, value in result.items()}
    if isinstance(result, (tuple, list)):
        return {f"output-{i}": value for i, value in enumerate(result)}
    return {"output-0": result}


def _to_host(value: Any) -> Any:
    """A device tensor's copy into pinned host memory, started on the current stream (wait for it before use)."""
    if not isinstance(value, torch.Tensor) or value.device.type == "cpu":
        return value
    host = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
    return host.copy_(value, non_blocking=True)


def _to_numpy(value: Any) -> np.ndarray:
    if not isinstance(value, torch.Tensor):
        return np.asarray(value)
    value = value.detach()
    return (value.float() if value.dtype == torch.bfloat16 else value).numpy()


def _last_line(error: Exception) -> str:
    """TorchScript prefixes its errors with a code traceback; the cause is the last line."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].removeprefix("RuntimeError: ") if lines else type(error).__name__


def create(name: str, artifact: Path, version: str | None = None) -> PyTorchModel:
    return PyTorchModel(name, artifact, version)
