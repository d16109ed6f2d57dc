"""gRPC messages of the Open Inference Protocol to and from Wharf's protocol objects. No I/O.

Tensors arrive either as typed `contents` or as `raw_input_contents` (little-endian, BYTES elements with 4-byte
length prefixes). A response answers in the encoding of its request, as Triton does; outputs that have no typed
field (FP16) make the whole response raw, because one response cannot mix the two encodings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from wharf.errors import InvalidInput, WharfError
from wharf.protocol import tensors
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.v2 import MESSAGE_OF_KIND, InferRequest, InferResponse, RequestedOutput, Tensor

# Datatype -> (InferTensorContents field, dtype the field's values are read into before narrowing).
_CONTENTS: dict[str, tuple[str, np.dtype]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
    "BYTES": ("bytes_contents", np.dtype(object)),
}
# Datatype -> Triton's DataType in a model configuration (BYTES is TYPE_STRING there; unknown: TYPE_INVALID, 0).
_CONFIG_TYPES = {name: pb.DataType.Value(f"TYPE_{'STRING' if name == 'BYTES' else name}") for name in tensors.DTYPES}
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1

Parameters = Mapping[str, pb.InferParameter]


# ---- requests ---------------------------------------------------------------------------------------------------
def encode_request(
    request: InferRequest, model: str, version: str | None = None, raw: bool = True
) -> pb.ModelInferRequest:
    """A ModelInferRequest (the client's side): raw input contents if `raw` (or if an input needs them), else typed."""
    message = pb.ModelInferRequest(model_name=model, model_version=version or "", id=request.id or "")
    if request.parameters:
        encode_parameters(message.parameters, request.parameters)
    _encode_tensors(message.inputs, message.raw_input_contents, request.inputs, raw)
    for wanted in request.outputs or ():
        out = message.outputs.add(name=wanted.name)
        if wanted.parameters:
            encode_parameters(out.parameters, wanted.parameters)
    return message


def decode_request(message: pb.ModelInferRequest) -> InferRequest:
    """The `InferRequest` a ModelInferRequest carries (the model name and version are the caller's business)."""
    items = message.inputs
    if not items:
        raise InvalidInput("'inputs' must hold at least one tensor")
    if not all(item.name for item in items):
        raise InvalidInput("every input needs a non-empty 'name'")
    return InferRequest(
        inputs=_decode_tensors(items, message.raw_input_contents, "input"),
        id=message.id or None,
        parameters=decode_parameters(message.parameters),
        outputs=[RequestedOutput(o.name, decode_parameters(o.parameters) or None) for o in message.outputs] or None,
    )


def _decode_tensors(items: Sequence[Any], raw: Sequence[bytes], kind: str) -> list[Tensor]:
    """The tensors of a request's inputs or a response's outputs (`kind` "input" or "output")."""
    if raw:
        if len(raw) != len(items):
            raise InvalidInput(
                f"raw_{kind}_contents has {len(raw)} entries for {len(items)} {kind}s; send one per {kind}, in order"
            )
        decoded = [_raw_tensor(item, data, kind) for item, data in zip(items, raw, strict=True)]
    else:
        decoded = [_typed_tensor(item, kind) for item in items]
    if len({t.name for t in decoded}) != len(decoded):
        raise InvalidInput(f"{kind} names must be unique")
    return decoded


def _tensor(item: Any, data: np.ndarray) -> Tensor:
    return Tensor(item.name, data, item.datatype, decode_parameters(item.parameters) or None)


def _raw_tensor(item: Any, data: bytes, kind: str) -> Tensor:
    if item.HasField("contents"):
        raise InvalidInput(
            f"{kind} '{item.name}' has contents but the {MESSAGE_OF_KIND[kind]} uses raw_{kind}_contents; "
            f"use one encoding for all {kind}s"
        )
    return _tensor(item, tensors.from_bytes(data, list(item.shape), item.datatype, item.name))


def _typed_tensor(item: Any, kind: str) -> Tensor:
    name, datatype = item.name, item.datatype
    shape = list(item.shape)
    count = tensors.element_count(shape, name)
    field, wide = _contents_field(datatype, name)
    values = getattr(item.contents, field)
    if len(values) != count:
        raise InvalidInput(f"{kind} '{name}': shape {shape} holds {count} elements but {field} has {len(values)}")
    if datatype == "BYTES":
        data = np.empty(count, dtype=object)
        data[:] = list(values)
    else:
        data = _narrowed(np.fromiter(values, wide, count), datatype, name)
    return _tensor(item, data.reshape(shape))


def _contents_field(datatype: str, tensor: str) -> tuple[str, np.dtype]:
    try:
        return _CONTENTS[datatype]
    except KeyError:
        tensors.dtype_of(datatype, tensor)  # raises for an unknown datatype
        raise InvalidInput(
            f"tensor '{tensor}': {datatype} has no typed contents field; send it in raw_input_contents"
        ) from None


def _narrowed(values: np.ndarray, datatype: str, tensor: str) -> np.ndarray:
    """Values read from a wider contents field, checked to fit `datatype` and converted to it."""
    dtype = tensors.DTYPES[datatype]
    if dtype == values.dtype:
        return values
    limits = np.iinfo(dtype)
    if values.size and (values.min() < limits.min or values.max() > limits.max):
        raise InvalidInput(f"tensor '{tensor}': a value is out of range for {datatype}")
    return values.astype(dtype)


# ---- responses --------------------------------------------------------------------------------------------------
def encode_response(response: InferResponse, raw: bool) -> pb.ModelInferResponse:
    """A ModelInferResponse for `response`: raw output contents if `raw` (or if an output needs them), else typed."""
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version or "", id=response.id or ""
    )
    try:
        if response.parameters:
            encode_parameters(message.parameters, response.parameters)
        _encode_tensors(message.outputs, message.raw_output_contents, response.outputs, raw)
    except InvalidInput as e:  # a parameter the model answered with: the server's fault, not the request's
        raise WharfError(f"model '{response.model_name}' answered {e.message}") from None
    return message


def decode_response(message: pb.ModelInferResponse) -> InferResponse:
    """The `InferResponse` a ModelInferResponse carries (the client's side), from raw or typed contents."""
    return InferResponse(
        model_name=message.model_name,
        outputs=_decode_tensors(message.outputs, message.raw_output_contents, "output"),
        model_version=message.model_version or None,
        id=message.id or None,
        parameters=decode_parameters(message.parameters) or None,
    )


def _encode_tensors(items: Any, raw_contents: Any, values: Sequence[Tensor], raw: bool) -> None:
    """Add `values` to a message's `items` (inputs or outputs), their data raw in `raw_contents` or typed.

    Raw if `raw` or if a tensor has no typed contents field (FP16): one message cannot mix the two encodings.
    """
    raw = raw or any(t.datatype not in _CONTENTS for t in values)
    for tensor in values:
        item = items.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.data.shape)
        if tensor.parameters:
            encode_parameters(item.parameters, tensor.parameters)
        if raw:
            raw_contents.append(tensors.to_bytes(tensor.data, tensor.datatype))
        else:
            field, _ = _contents_field(tensor.datatype, tensor.name)
            getattr(item.contents, field).extend(_typed_values(tensor))


def _typed_values(tensor: Tensor) -> list[Any]:
    if tensor.datatype == "BYTES":
        return [item if isinstance(item, bytes) else str(item).encode() for item in tensor.data.reshape(-1)]
    return np.asarray(tensor.data, dtype=tensors.DTYPES[tensor.datatype]).reshape(-1).tolist()


# ---- parameters -------------------------------------------------------------------------------------------------
def decode_parameters(parameters: Parameters) -> dict[str, Any]:
    """Plain values of a parameter map; a parameter with no value set is left out."""
    out = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            out[key] = getattr(parameter, choice)
    return out


def encode_parameters(target: Any, parameters: Mapping[str, Any]) -> None:
    """Write plain values into a protobuf map of InferParameter (`target`)."""
    for key, value in parameters.items():
        parameter = target[key]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, int) and -_INT64_MAX - 1 <= value <= _INT64_MAX:
            parameter.int64_param = value
        elif isinstance(value, int) and 0 <= value <= _UINT64_MAX:
            parameter.uint64_param = value
        elif isinstance(value, float):
            parameter.double_param = value
        elif isinstance(value, str):
            parameter.string_param = value
        else:
            raise InvalidInput(f"parameter '{key}' ({type(value).__name__}) has no gRPC InferParameter form")


# ---- metadata and repository ------------------------------------------------------------------------------------
def _tensor_metadata(specs: Iterable[Mapping[str, Any]]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
    return [
        pb.ModelMetadataResponse.TensorMetadata(name=s["name"], datatype=s["datatype"], shape=s["shape"]) for s in specs
    ]


def encode_server_metadata(doc: Mapping[str, Any]) -> pb.ServerMetadataResponse:
    return pb.ServerMetadataResponse(name=doc["name"], version=doc["version"], extensions=doc["extensions"])


def encode_model_metadata(doc: Mapping[str, Any]) -> pb.ModelMetadataResponse:
    """A ModelMetadataResponse from the data plane's metadata document."""
    return pb.ModelMetadataResponse(
        name=doc["name"],
        versions=doc["versions"],
        platform=doc["platform"],
        inputs=_tensor_metadata(doc["inputs"]),
        outputs=_tensor_metadata(doc["outputs"]),
    )


def _config_tensors(kind: type[Any], specs: Iterable[Mapping[str, Any]]) -> list[Any]:
    """ModelInput or ModelOutput messages (`kind`) for tensor specs."""
    return [kind(name=s["name"], data_type=_CONFIG_TYPES.get(s["datatype"], 0), dims=s["shape"]) for s in specs]


def encode_model_config(doc: Mapping[str, Any]) -> pb.ModelConfigResponse:
    """Triton's model configuration for a model, from the data plane's metadata document."""
    config = pb.ModelConfig(
        name=doc["name"],
        platform=doc["platform"],
        backend=doc["platform"],
        max_batch_size=0,
        input=_config_tensors(pb.ModelInput, doc["inputs"]),
        output=_config_tensors(pb.ModelOutput, doc["outputs"]),
    )
    return pb.ModelConfigResponse(config=config)


def encode_repository_index(rows: Iterable[Mapping[str, str]]) -> pb.RepositoryIndexResponse:
    return pb.RepositoryIndexResponse(
        models=[
            pb.RepositoryIndexResponse.ModelIndex(
                name=row["name"], version=row.get("version", ""), state=row["state"], reason=row.get("reason", "")
            )
            for row in rows
        ]
    )


def repository_model_name(message: pb.RepositoryModelLoadRequest | pb.RepositoryModelUnloadRequest) -> str:
    """The model a load or unload request names: field 2 from Triton's clients, else field 1 from KServe's.

    Triton's parameters are configuration overrides Wharf cannot apply, except `unload_dependents` (Wharf's
    models have no dependents), so any other parameter is rejected.
    """
    name = message.triton_model_name or message.model_name
    if not name:
        raise InvalidInput("the request names no model")
    unsupported = sorted(set(message.parameters) - {"unload_dependents"})
    if unsupported:
        raise InvalidInput(f"model '{name}': Wharf does not accept repository parameters {unsupported}")
    return name
