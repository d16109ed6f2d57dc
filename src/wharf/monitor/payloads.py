"""Payloads as tables: the rows that a logged request or response, or an uploaded list of tensors, carries, one
column per feature. Bodies are decoded with the protocol's own decoders: V2 JSON (with the binary tensor extension
when the event gives its JSON length), gRPC protobuf (`application/x-protobuf; messageType=...`) and KServe V1.

Columns follow the tensors, as TrustyAI names them: a tensor of shape [n] or [n, 1] is one column named after it;
a tensor of shape [n, k, ...] is k*... columns `name-0`, `name-1`, ... (its trailing dimensions flattened). The
first dimension counts rows (a scalar, shape [], is one row), and every tensor of a message has as many. A V1 body
names no tensor: its rows are `input-0` (as Wharf's REST transport names a model's one undeclared input) and its
predictions `output-0`. A message of a single tensor is *positional*: its column names only number positions, so
it fits a model of as many columns by position (`wharf.monitor.store.ModelSchema`).

Cost per event: the protocol decoder's (a few µs for a small JSON body; JSON is parsed once more to tell V1 from
V2, about 1 µs a kilobyte), then one view per column; BYTES columns become lists of text (UTF-8, undecodable bytes
replaced).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wharf.errors import InvalidInput
from wharf.protocol import tensors, v1, v2
from wharf.protocol.grpc import codec
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb

V1_INPUT = "input-0"
V1_OUTPUT = "output-0"
TEXT = "BYTES"
_PROTOBUF = "application/x-protobuf"
_V2_TENSOR_KEYS = ("name", "shape", "datatype", "data", "parameters")


@dataclass(slots=True)  # not frozen: made per event, where frozen costs more
class Table:
    """Rows of one message: `columns[i]` (1-D, `rows` long) holds column `names[i]` of `datatypes[i]` (a protocol
    datatype; BYTES columns hold `str`)."""

    names: tuple[str, ...]
    datatypes: tuple[str, ...]
    columns: tuple[np.ndarray, ...]
    rows: int
    positional: bool  # a single tensor: its names only number positions


def request_table(body: bytes, content_type: str, json_length: str | None = None) -> Table:
    """The inputs of a logged request (V2 JSON, binary or gRPC, or V1)."""
    if content_type.startswith(_PROTOBUF):
        message = _protobuf(pb.ModelInferRequest, body)
        return tensor_table(codec.decode_request(message).inputs, "input")
    if json_length is not None:
        return tensor_table(v2.decode_request(body, _length(json_length)).inputs, "input")
    doc = v2.loads_object(body)
    if _is_v2_request(doc):
        return tensor_table(v2.decode_request(body).inputs, "input")
    return tensor_table(v1.decode_request(body, V1_INPUT).inputs, "input")


def response_table(body: bytes, content_type: str, json_length: str | None = None) -> Table:
    """The outputs of a logged response (V2 JSON, binary or gRPC, or V1 `predictions`)."""
    if content_type.startswith(_PROTOBUF):
        message = _protobuf(pb.ModelInferResponse, body)
        return tensor_table(codec.decode_response(message).outputs, "output")
    if json_length is not None:
        return tensor_table(v2.decode_response(body, _length(json_length)).outputs, "output")
    doc = v2.loads_object(body)
    if "predictions" in doc:
        return tensor_table(v1.decode_request(body, V1_OUTPUT).inputs, "output")
    return tensor_table(v2.decode_response(body).outputs, "output")


def _is_v2_request(doc: dict[str, Any]) -> bool:
    """Whether a request document is V2: its `inputs` are tensor objects (V1's `inputs` are rows or a mapping)."""
    items = doc.get("inputs")
    return isinstance(items, list) and bool(items) and isinstance(items[0], dict) and "datatype" in items[0]


def _length(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"inferenceheadercontentlength must be an integer, got {value!r}") from None


def _protobuf(message: Any, body: bytes) -> Any:
    try:
        return message.FromString(body)
    except Exception:  # protobuf's DecodeError, or whatever a malformed message raises
        raise InvalidInput(f"body is not a {message.DESCRIPTOR.full_name} message") from None


def decode_tensors(items: Any, kind: str, text_size: int) -> list[v2.Tensor]:
    """Tensors written as V2 JSON objects (an upload's `inputs` or `outputs`), from a text of `text_size` bytes;
    keys other than V2's (TrustyAI's `executionIDs`) are the caller's."""
    if not isinstance(items, list) or not items:
        raise InvalidInput(f"'{kind}s' must be a non-empty list of tensors")
    decoded = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise InvalidInput(f"{kind}s[{index}] must be an object with a non-empty 'name'")
        if "data" not in item:
            raise InvalidInput(f"{kind} '{item['name']}' has no 'data'")
        name = item["name"]
        data = tensors.from_json(item["data"], item.get("shape"), item.get("datatype"), name, text_size)
        decoded.append(v2.Tensor(name, data, item["datatype"]))
    if len({t.name for t in decoded}) != len(decoded):
        raise InvalidInput(f"{kind} names must be unique")
    return decoded


def tensor_table(items: Sequence[v2.Tensor], kind: str) -> Table:
    """The columns of a message's tensors (see the module's docstring); `kind` ("input", "output") names them in
    errors."""
    names: list[str] = []
    datatypes: list[str] = []
    columns: list[np.ndarray] = []
    rows = -1
    first = ""
    for tensor in items:
        data = tensor.data if tensor.data.ndim else tensor.data.reshape(1)
        count = data.shape[0]
        if rows < 0:
            rows, first = count, tensor.name
        elif count != rows:
            raise InvalidInput(f"{kind} '{tensor.name}' has {count} rows but {kind} '{first}' has {rows}")
        width = math.prod(data.shape[1:])
        block = data.reshape(count, width)
        if tensor.datatype == TEXT:
            block = _texts(block)
        names.extend(_names(tensor.name, width))
        columns.extend(block.T)  # a view of each column
        datatypes.extend([tensor.datatype] * width)
    if len(set(names)) != len(names):
        raise InvalidInput(f"{kind} column names are not unique: {names}")
    return Table(tuple(names), tuple(datatypes), tuple(columns), max(rows, 0), len(items) == 1)


@functools.lru_cache(maxsize=1024)
def _names(tensor: str, width: int) -> tuple[str, ...]:
    """The column names of a tensor `width` values wide (a few tensor shapes come again and again)."""
    return (tensor,) if width == 1 else tuple(f"{tensor}-{i}" for i in range(width))


def _texts(block: np.ndarray) -> np.ndarray:
    """BYTES elements as text."""
    out = np.empty(block.shape, dtype=object)
    flat = out.reshape(-1)
    for i, item in enumerate(block.reshape(-1)):
        flat[i] = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
    return out
