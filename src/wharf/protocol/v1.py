"""KServe V1 protocol: `{"instances": [...]}` (or `{"inputs": ...}`) in, `{"predictions": [...]}` out.

V1 payloads are mapped onto the V2 messages so that models see one request type whatever the protocol.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wharf.errors import InvalidInput
from wharf.protocol import tensors
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor, dumps, loads_object


def _array(value: Any, key: str) -> np.ndarray:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"'{key}' must be a non-empty list")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise InvalidInput(f"'{key}' is ragged; nested lists must be rectangular") from None
    if array.dtype.kind == "U":
        return np.vectorize(str.encode, otypes=[object])(array)
    if array.dtype.kind not in "biuf":
        raise InvalidInput(f"'{key}' must hold numbers, booleans or strings")
    return array


def decode_request(body: bytes, input_name: str) -> InferRequest:
    """Decode a V1 predict body into a one-input request whose input is called `input_name`."""
    doc = loads_object(body)
    # "predictions" too: an inference graph's Sequence passes a V1 answer on to the next model as its request.
    keys = [k for k in ("instances", "inputs", "predictions") if k in doc]
    if len(keys) != 1:
        raise InvalidInput("request must have exactly one of 'instances' or 'inputs'")
    return InferRequest(inputs=[Tensor(input_name, _array(doc[keys[0]], keys[0]))])


def nested_json(array: np.ndarray, tensor: str) -> Any:
    """A tensor's data as nested JSON rows in its shape, as V1 `instances` and `predictions` carry it: numeric
    arrays stay numpy (orjson writes them), BYTES become strings (InvalidInput naming `tensor` if not UTF-8)."""
    flat = tensors.to_json(array, tensor)
    if isinstance(flat, np.ndarray):
        return flat.reshape(array.shape)
    rows = np.empty(len(flat), dtype=object)
    rows[:] = flat
    return rows.reshape(array.shape).tolist()


def encode_response(response: InferResponse) -> bytes:
    """`{"predictions": ...}`: the output itself, or one object per row when the model has several outputs."""
    outputs = response.outputs
    if len(outputs) == 1:
        return dumps({"predictions": nested_json(outputs[0].data, outputs[0].name)})
    lengths = {len(t.data) if t.data.ndim else 0 for t in outputs}
    if len(lengths) != 1 or 0 in lengths:
        raise InvalidInput("the model's outputs differ in length; call it over the V2 protocol")
    columns = {t.name: _rows(nested_json(t.data, t.name)) for t in outputs}
    return dumps({"predictions": [{name: rows[i] for name, rows in columns.items()} for i in range(lengths.pop())]})


def _rows(nested: Any) -> list[Any]:
    return nested.tolist() if isinstance(nested, np.ndarray) else nested


def model_status(name: str, ready: bool) -> bytes:
    return dumps({"name": name, "ready": ready})
