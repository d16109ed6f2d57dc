"""Open Inference Protocol (V2) messages, their JSON form and the binary tensor data extension.

Requests are decoded with orjson straight into numpy arrays; responses are encoded without copying numeric
arrays. Metadata messages are plain dictionaries built by `TensorSpec.as_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from wharf.errors import InvalidInput
from wharf.protocol import tensors

BINARY_HEADER = "inference-header-content-length"
# KServe's client also repeats the model's name and version in the body; the URL says which model answers.
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs", "model_name", "model_version"})
_TENSOR_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_TRANSPORT_PARAMETERS = frozenset({"binary_data_size", "binary_data"})  # set by the codec, never by a model
# The message that carries each kind of tensor (the codecs name tensors "input" or "output" in errors).
MESSAGE_OF_KIND = {"input": "request", "output": "response"}


@dataclass(slots=True)
class TensorSpec:
    """Metadata of a model input or output: -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


@dataclass(slots=True)
class Tensor:
    """A named tensor; `datatype` defaults to the one that matches the array's dtype."""

    name: str
    data: np.ndarray
    datatype: str = ""
    parameters: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, np.ndarray):
            self.data = np.asarray(self.data)
        if not self.datatype:
            self.datatype = tensors.datatype_of(self.data)

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)


@dataclass(slots=True)
class RequestedOutput:
    name: str
    parameters: dict[str, Any] | None = None


@dataclass(slots=True)
class InferRequest:
    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None
    #: "v1" for a request decoded from a KServe V1 body (an adapted `kserve.Model` hands its predict the V1 dict)
    protocol: str = "v2"

    def named(self) -> dict[str, np.ndarray]:
        """The inputs as a name -> array mapping."""
        return {t.name: t.data for t in self.inputs}


@dataclass(slots=True)
class InferResponse:
    model_name: str
    outputs: list[Tensor]
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: 'parameters' must be a JSON object")
    return value


def decode_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Decode an inference request; with `header_length`, binary tensor data follows the JSON header."""
    if header_length is None:  # (most requests: JSON only)
        doc, binary, text_size = loads_object(body), None, len(body)
    else:
        doc, binary, text_size = _parse(body, header_length)
    if not doc.keys() <= _REQUEST_KEYS:
        raise InvalidInput(f"unknown request field(s): {', '.join(sorted(doc.keys() - _REQUEST_KEYS))}")
    items = doc.get("inputs")
    if not isinstance(items, list) or not items:
        raise InvalidInput("'inputs' must be a non-empty list")
    inputs = _decode_tensors(items, "input", binary, text_size)
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    parameters = doc.get("parameters")
    outputs = doc.get("outputs")
    return InferRequest(
        inputs,
        request_id,
        {} if parameters is None else _parameters(parameters, "request"),
        None if outputs is None else _decode_outputs(outputs),
    )


def decode_response(body: bytes, header_length: int | None = None) -> InferResponse:
    """Decode an inference response (the client's side); with `header_length`, binary outputs follow the JSON."""
    doc, binary, text_size = _parse(body, header_length)
    model_name = doc.get("model_name")
    if not isinstance(model_name, str):
        raise InvalidInput("response: 'model_name' must be a string")
    items = doc.get("outputs")
    if not isinstance(items, list):
        raise InvalidInput("response: 'outputs' must be a list")
    return InferResponse(
        model_name=model_name,
        outputs=_decode_tensors(items, "output", binary, text_size),
        model_version=doc.get("model_version"),
        id=doc.get("id"),
        parameters=_parameters(doc.get("parameters"), "response") or None,
    )


def _parse(body: bytes, header_length: int | None) -> tuple[dict[str, Any], memoryview | None, int]:
    """The JSON document of a message, the binary tensor data after it (None without `header_length`) and the
    length of the JSON text."""
    binary: memoryview | None = None
    if header_length is not None:
        if not 0 < header_length <= len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length {header_length} does not fit a body of {len(body)} bytes"
            )
        binary = memoryview(body)[header_length:]
        body = body[:header_length]
    return loads_object(body), binary, len(body)


def _decode_tensors(items: list[Any], kind: str, binary: memoryview | None, text_size: int) -> list[Tensor]:
    """The tensors of a request's inputs or a response's outputs (`kind` "input" or "output"), from a JSON text
    of `text_size` bytes."""
    decoded, offset = [], 0
    for index, item in enumerate(items):
        tensor, offset = _decode_tensor(item, kind, index, binary, offset, text_size)
        decoded.append(tensor)
    if binary is not None and offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} bytes of binary data follow the last {kind}")
    if len(decoded) > 1 and len({t.name for t in decoded}) != len(decoded):
        raise InvalidInput(f"{kind} names must be unique")
    return decoded


def _decode_tensor(
    item: Any, kind: str, index: int, binary: memoryview | None, offset: int, text_size: int
) -> tuple[Tensor, int]:
    if not isinstance(item, dict):
        raise InvalidInput(f"{kind}s[{index}] must be a JSON object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{kind}s[{index}]: 'name' must be a non-empty string")
    if not item.keys() <= _TENSOR_KEYS:
        unknown = ", ".join(sorted(item.keys() - _TENSOR_KEYS))
        raise InvalidInput(f"{kind} '{name}': unknown field(s): {unknown}")
    datatype = item.get("datatype")
    shape = item.get("shape")
    parameters = item.get("parameters")
    size = None
    if parameters is not None:  # (most tensors have none: no name for errors is made for them)
        parameters = _parameters(parameters, f"{kind} '{name}'")
        size = parameters.pop("binary_data_size", None)  # how the tensor travelled, not a parameter for the model
    if size is not None:
        if binary is None:
            raise InvalidInput(
                f"{kind} '{name}' has binary_data_size but the {MESSAGE_OF_KIND[kind]} has no binary data"
            )
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise InvalidInput(f"{kind} '{name}': binary_data_size {size!r} runs past the binary data")
        data = tensors.from_bytes(binary[offset : offset + size], shape, datatype, name)
        offset += size
    elif "data" in item:
        data = tensors.from_json(item["data"], shape, datatype, name, text_size)
    else:
        raise InvalidInput(f"{kind} '{name}' has neither 'data' nor binary_data_size")
    return Tensor(name, data, datatype, parameters or None), offset


def _decode_outputs(items: Any) -> list[RequestedOutput] | None:
    if items is None:
        return None
    if not isinstance(items, list):
        raise InvalidInput("'outputs' must be a list")
    outputs = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"outputs[{index}] must be an object with a string 'name'")
        outputs.append(
            RequestedOutput(item["name"], _parameters(item.get("parameters"), f"output '{item['name']}'") or None)
        )
    return outputs


def _wants_binary(name: str, request: InferRequest | None) -> bool:
    if request is None:
        return False
    default = bool(request.parameters.get("binary_data_output", False))
    for wanted in request.outputs or ():
        if wanted.name == name and wanted.parameters and "binary_data" in wanted.parameters:
            return bool(wanted.parameters["binary_data"])
    return default


def encode_request(request: InferRequest, binary: bool = False) -> tuple[bytes, int | None]:
    """Encode a request (the client's side) as JSON, or with `binary` as JSON header plus raw input bytes.

    Returns the body and, for a binary body, the header length for `Inference-Header-Content-Length`.
    """
    chunks: list[bytes] = []
    doc: dict[str, Any] = {}
    if request.id is not None:
        doc["id"] = request.id
    if request.parameters:
        doc["parameters"] = request.parameters
    doc["inputs"] = [_encode_tensor(tensor, binary, chunks) for tensor in request.inputs]
    if request.outputs is not None:
        doc["outputs"] = [
            {"name": o.name, "parameters": o.parameters} if o.parameters else {"name": o.name} for o in request.outputs
        ]
    return _with_binary(doc, chunks)


def encode_response(response: InferResponse, request: InferRequest | None = None) -> tuple[bytes, int | None]:
    """Encode a response as JSON, or as JSON header plus raw bytes where the request asked for binary outputs.

    Returns the body and, for a binary body, the header length for `Inference-Header-Content-Length`.
    """
    chunks: list[bytes] = []
    # only a request with parameters or requested outputs can ask for binary outputs
    asks = request is not None and (request.outputs is not None or bool(request.parameters))
    outputs = [
        _encode_tensor(tensor, asks and _wants_binary(tensor.name, request), chunks) for tensor in response.outputs
    ]
    doc: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        doc["model_version"] = response.model_version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    doc["outputs"] = outputs
    return _with_binary(doc, chunks)


def _encode_tensor(tensor: Tensor, binary: bool, chunks: list[bytes]) -> dict[str, Any]:
    """A tensor's JSON object: with its `data`, or with `binary` its size while its raw bytes go to `chunks`."""
    out: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.data.shape)}
    given = tensor.parameters
    parameters = {k: v for k, v in given.items() if k not in _TRANSPORT_PARAMETERS} if given else {}
    if binary:
        raw = tensors.to_bytes(tensor.data, tensor.datatype)
        parameters["binary_data_size"] = len(raw)
        chunks.append(raw)
    else:
        out["data"] = tensors.to_json(tensor.data, tensor.name)
    if parameters:
        out["parameters"] = parameters
    return out


def _with_binary(doc: dict[str, Any], chunks: list[bytes]) -> tuple[bytes, int | None]:
    """The body of a message: the JSON document, then the binary chunks if any (with the header's length)."""
    header = orjson.dumps(doc, option=_DUMPS_OPTIONS)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def loads_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object")
    return doc


def dumps(doc: Any) -> bytes:
    """JSON-encode a protocol document (numpy arrays allowed)."""
    return orjson.dumps(doc, option=_DUMPS_OPTIONS)
