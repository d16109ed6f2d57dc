"""Tensor datatypes of the Open Inference Protocol and their numpy form, in JSON and in raw bytes.

No I/O here: functions turn wire values into numpy arrays and back, and raise `InvalidInput` naming the tensor
when a value does not fit its declared datatype or shape.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from wharf.errors import InvalidInput

# Datatype name -> numpy dtype (BYTES is an object array of `bytes`). Raw bytes are little-endian.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
_DATATYPE_OF_DTYPE: dict[np.dtype, str] = {
    dtype.newbyteorder("="): name for name, dtype in DTYPES.items() if name != "BYTES"
}
_LENGTH = struct.Struct("<I")


def dtype_of(datatype: str, tensor: str) -> np.dtype:
    """The numpy dtype for a protocol datatype name; `tensor` names the tensor in the error."""
    try:
        return DTYPES[datatype]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"tensor '{tensor}': unknown datatype {datatype!r}; expected one of {', '.join(DTYPES)}"
        ) from None


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype name for a numpy array (strings and objects travel as BYTES)."""
    name = _DATATYPE_OF_DTYPE.get(array.dtype.newbyteorder("="))
    if name is not None:
        return name
    if array.dtype.kind in "OSU":
        return "BYTES"
    raise InvalidInput(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype")


def element_count(shape: Any, tensor: str) -> int:
    """Validate a request shape (a list of non-negative integers) and return its number of elements."""
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(f"tensor '{tensor}': shape must be a list of non-negative integers, got {shape!r}")
    return math.prod(shape)


def _size_mismatch(tensor: str, shape: list[int], count: int, found: int) -> InvalidInput:
    return InvalidInput(f"tensor '{tensor}': shape {shape} holds {count} elements but data has {found}")


def from_json(data: Any, shape: Any, datatype: str, tensor: str) -> np.ndarray:
    """Decode a tensor's JSON `data` (flat or nested, row-major) into an array of `shape`."""
    dtype = dtype_of(datatype, tensor)
    count = element_count(shape, tensor)
    if not isinstance(data, list):
        data = [data]
    if datatype == "BYTES":
        array = _bytes_from_json(data, tensor)
    else:
        array = _numbers_from_json(data, dtype, datatype, tensor)
    if array.size != count:
        raise _size_mismatch(tensor, shape, count, array.size)
    return array.reshape(shape)


def _numbers_from_json(data: list, dtype: np.dtype, datatype: str, tensor: str) -> np.ndarray:
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):
        raise InvalidInput(f"tensor '{tensor}': data is ragged; nested lists must be rectangular") from None
    kind = array.dtype.kind
    if array.size == 0:
        return array.astype(dtype)
    if datatype == "BOOL":
        if kind != "b":
            raise InvalidInput(f"tensor '{tensor}': BOOL data must be true or false")
        return array
    if dtype.kind in "iu":
        return _integers(data, array, dtype, datatype, tensor)
    if kind not in "iuf":
        raise InvalidInput(f"tensor '{tensor}': {datatype} data must be numbers")
    return array.astype(dtype, copy=False)


def _integers(data: list, array: np.ndarray, dtype: np.dtype, datatype: str, tensor: str) -> np.ndarray:
    out_of_range = InvalidInput(f"tensor '{tensor}': a value is out of range for {datatype}")
    if array.dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise out_of_range
        return array.astype(dtype, copy=False)
    # numpy infers floats (or objects) for integers beyond int64; only whole Python ints are accepted
    if array.dtype.kind not in "fO" or not all(type(v) is int for v in _flatten(data, [])):
        raise InvalidInput(f"tensor '{tensor}': {datatype} data must be integers")
    try:
        return np.asarray(data, dtype=dtype)
    except OverflowError:
        raise out_of_range from None


def _flatten(data: list, out: list) -> list:
    for item in data:
        if isinstance(item, list):
            _flatten(item, out)
        else:
            out.append(item)
    return out


def _bytes_from_json(data: list, tensor: str) -> np.ndarray:
    items = _flatten(data, [])
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidInput(f"tensor '{tensor}': BYTES data must be strings, got {type(item).__name__}")
        array[i] = item.encode()
    return array


def to_json(array: np.ndarray, tensor: str) -> Any:
    """Flat row-major JSON data for an array: numeric arrays stay numpy (orjson serialises them natively)."""
    if array.dtype.kind not in "OSU":
        return np.ascontiguousarray(array).reshape(-1)
    texts = to_texts(array)
    if texts is None:
        raise InvalidInput(f"tensor '{tensor}' holds bytes that are not UTF-8; request it with binary_data")
    return texts


def to_texts(array: np.ndarray) -> list[str] | None:
    """A BYTES array's elements as text, flat in row-major order (UTF-8 for bytes); None if some are not UTF-8."""
    texts = []
    for item in array.reshape(-1):
        if isinstance(item, bytes):
            try:
                item = item.decode()
            except UnicodeDecodeError:
                return None
        texts.append(item if isinstance(item, str) else str(item))
    return texts


def to_bytes(array: np.ndarray, datatype: str) -> bytes:
    """Raw little-endian row-major bytes of a tensor; BYTES elements each get a 4-byte length prefix."""
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()
    parts = []
    for item in array.reshape(-1):
        raw = item if isinstance(item, bytes) else str(item).encode()
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def from_bytes(raw: bytes | memoryview, shape: Any, datatype: str, tensor: str) -> np.ndarray:
    """Decode a tensor's raw bytes (as `to_bytes` writes them) into an array of `shape`."""
    dtype = dtype_of(datatype, tensor)
    count = element_count(shape, tensor)
    if datatype == "BYTES":
        return _bytes_from_raw(memoryview(raw), count, tensor).reshape(shape)
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"tensor '{tensor}': shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _bytes_from_raw(raw: memoryview, count: int, tensor: str) -> np.ndarray:
    items: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end:
            raise InvalidInput(f"tensor '{tensor}': BYTES data ends inside a length prefix")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInput(f"tensor '{tensor}': a BYTES element runs past the end of its data")
        items.append(bytes(raw[offset : offset + length]))
        offset += length
        if len(items) > count:
            break
    if len(items) != count:
        raise InvalidInput(f"tensor '{tensor}': shape holds {count} elements but data has {len(items)}")
    array = np.empty(count, dtype=object)
    array[:] = items
    return array
