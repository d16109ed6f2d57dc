"""KServe V1 protocol: `{"instances": [...]}` (or `{"inputs": ...}`) in, `{"predictions": [...]}` out.

V1 payloads are mapped onto the V2 messages so that models see one request type whatever the protocol. As in
TensorFlow Serving's REST API, which V1 follows:
- `instances` is a list of rows for the model's one input, or a list of objects naming several inputs
  (`[{"image": ..., "key": "a"}, ...]`, row format); `inputs` is the rows of one input, or an object holding each
  named input's rows (`{"image": [...], "key": [...]}`, columnar format);
- a binary value is written `{"b64": "<base64>"}`, in requests and answers: answers carry BYTES that are not
  UTF-8 that way.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from wharf.errors import InvalidInput
from wharf.protocol import tensors
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor, dumps, loads_object

B64 = "b64"
_MAX_DEPTH = 64  # numpy's most dimensions, and far from Python's recursion limit
_KEYS = ("instances", "inputs", "predictions")


def _binary(value: Any, depth: int = 0) -> Any:
    """`value` with every `{"b64": ...}` object decoded into bytes (other objects are kept for the caller)."""
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"the request nests lists deeper than {_MAX_DEPTH} levels")
    if isinstance(value, list):
        return [_binary(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    if value.keys() == {B64}:
        try:
            return base64.b64decode(value[B64], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise InvalidInput("a {'b64': ...} value must hold a base64 string") from None
    return {key: _binary(item, depth + 1) for key, item in value.items()}


def _array(value: Any, key: str, text_size: int) -> np.ndarray:
    """The tensor of one input's rows, from a JSON text of `text_size` bytes."""
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"'{key}' must be a non-empty list")
    if text_size > tensors.TEXT_LOOKED_THROUGH_ABOVE:  # numpy would widen every string to the longest one
        types = set(map(type, tensors.flat_values(value, f"'{key}'")))
        if str in types or bytes in types:
            return _bytes_array(value, key)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged, or bytes that numpy cannot read as ASCII beside strings
        return _bytes_array(value, key)
    if array.dtype.kind in "SU":
        return _bytes_array(value, key)
    if array.dtype.kind not in "biuf":
        raise InvalidInput(f"'{key}' must hold numbers, booleans, strings or {{'b64': ...}} values")
    return array


def _bytes_array(value: list[Any], key: str) -> np.ndarray:
    """A BYTES tensor: numpy would pad bytes into fixed width (dropping trailing NULs) and turn numbers into text."""
    ragged = InvalidInput(f"'{key}' is ragged; nested lists must be rectangular")
    try:
        items = np.array(value, dtype=object)
    except ValueError:
        raise ragged from None
    flat = items.reshape(-1)
    if any(isinstance(item, dict) for item in flat):
        raise InvalidInput(f"'{key}' mixes objects (rows naming inputs) with other rows")
    for i, item in enumerate(flat):
        if isinstance(item, str):
            flat[i] = item.encode()
        elif isinstance(item, list):
            raise ragged
        elif not isinstance(item, bytes):
            raise InvalidInput(f"'{key}' mixes strings with other values")
    return items


def _named(inputs: dict[str, Any], key: str, text_size: int) -> list[Tensor]:
    if not inputs:
        raise InvalidInput(f"'{key}' must name at least one input")
    return [Tensor(name, _array(rows, f"{key}.{name}", text_size)) for name, rows in inputs.items()]


def _rows(instances: list[Any], text_size: int) -> list[Tensor]:
    """Row format: one object per instance, each naming the same inputs."""
    names = instances[0].keys()
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise InvalidInput(f"instance {i} is not an object like instance 0; rows either all name inputs or none")
        if instance.keys() != names:
            raise InvalidInput(
                f"instance {i} names the inputs {sorted(instance)}, instance 0 names {sorted(names)}; "
                "every instance must name the same inputs"
            )
    return _named({name: [instance[name] for instance in instances] for name in names}, "instances", text_size)


def decode_request(body: bytes, input_name: str) -> InferRequest:
    """Decode a V1 predict body into a request; rows of one unnamed input become the input `input_name`."""
    doc = loads_object(body)
    # "predictions" too: an inference graph's Sequence passes a V1 answer on to the next model as its request.
    # Other fields are left alone, as KServe does: a graph's Switch routes on fields its steps then receive.
    keys = [k for k in _KEYS if k in doc]
    if len(keys) != 1:
        raise InvalidInput("request must have exactly one of 'instances' or 'inputs'")
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be an object")
    key = keys[0]
    value = _binary(doc[key]) if b'"b64"' in body else doc[key]
    if isinstance(value, dict):
        inputs = _named(value, key, len(body))
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        inputs = _rows(value, len(body))
    else:
        inputs = [Tensor(input_name, _array(value, key, len(body)))]
    return InferRequest(inputs=inputs, parameters=parameters, protocol="v1")


def nested_json(array: np.ndarray) -> Any:
    """A tensor's data as nested JSON rows in its shape, as V1 `instances` and `predictions` carry it: numeric
    arrays stay numpy (orjson writes them); BYTES become strings, or all `{"b64": ...}` if some are not UTF-8 (so a
    reader knows a tensor's kind from any of its values)."""
    if array.dtype.kind not in "OSU":
        return np.ascontiguousarray(array)
    rows = np.empty(array.size, dtype=object)
    texts = tensors.to_texts(array)
    if texts is None:
        rows[:] = [{B64: base64.b64encode(_raw(item)).decode()} for item in array.reshape(-1)]
    else:
        rows[:] = texts
    return rows.reshape(array.shape).tolist()


def _raw(item: Any) -> bytes:
    return item if isinstance(item, bytes) else str(item).encode()


def encode_request(request: InferRequest) -> bytes:
    """A V1 predict body: one input as `instances` rows, several as columnar `inputs` naming each; `parameters`."""
    if len(request.inputs) == 1:
        doc: dict[str, Any] = {"instances": nested_json(request.inputs[0].data)}
    else:
        doc = {"inputs": {t.name: nested_json(t.data) for t in request.inputs}}
    if request.parameters:
        doc["parameters"] = request.parameters
    return dumps(doc)


def encode_response(response: InferResponse) -> bytes:
    """`{"predictions": ...}`: the output itself, or one object per row when the model has several outputs."""
    outputs = response.outputs
    if len(outputs) == 1:
        return dumps({"predictions": nested_json(outputs[0].data)})
    lengths = {len(t.data) if t.data.ndim else 0 for t in outputs}
    if len(lengths) != 1 or 0 in lengths:
        raise InvalidInput("the model's outputs differ in length; call it over the V2 protocol")
    columns = {t.name: _as_list(nested_json(t.data)) for t in outputs}
    return dumps({"predictions": [{name: rows[i] for name, rows in columns.items()} for i in range(lengths.pop())]})


def _as_list(nested: Any) -> list[Any]:
    return nested.tolist() if isinstance(nested, np.ndarray) else nested


def model_status(name: str, ready: bool) -> bytes:
    return dumps({"name": name, "ready": ready})
