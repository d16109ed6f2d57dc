"""Tensor datatypes of the Open Inference Protocol and their numpy form, in JSON and in raw bytes.

No I/O here: functions turn wire values into numpy arrays and back, and raise `InvalidInput` naming the tensor
when a value does not fit its declared datatype or shape.

What a request may cost is checked before anything is allocated for it: a shape has at most `MAX_DIMS`
non-negative dimensions; the data must hold as many elements as the shape before an array is made of it (raw
bytes: their length is compared, BYTES elements take at least their 4-byte length prefix), so arrays are sized by
the body, never by what a client declares. An empty tensor's other dimensions multiply to at most `MAX_ELEMENTS`,
so that numpy can hold it.
"""

from __future__ import annotations

import math
import struct
from itertools import chain
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
MAX_DIMS = 64  # numpy's most dimensions
MAX_ELEMENTS = 2**40  # more than any request carries: the most an empty tensor's other dimensions may multiply to
# numpy gives every element of an array that holds a string the width of the longest one: data holding one long
# and many short strings, from a JSON text of B bytes, would take up to B**2/4 bytes. Data from texts up to this
# size is converted at once (at most 4 MiB); from larger texts it is first looked through for strings.
TEXT_LOOKED_THROUGH_ABOVE = 4096


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
    """Validate a request shape (see the module's docstring) and return its number of elements."""
    if isinstance(shape, list) and len(shape) > MAX_DIMS:
        raise InvalidInput(f"tensor '{tensor}': shape has {len(shape)} dimensions; at most {MAX_DIMS} are allowed")
    if not isinstance(shape, list):
        raise _not_a_shape(shape, tensor)
    for d in shape:  # a loop, not all(...) of a generator: half the cost for the usual two dimensions
        if type(d) is not int or d < 0:
            raise _not_a_shape(shape, tensor)
    count = math.prod(shape)
    if count == 0 and math.prod(d for d in shape if d) > MAX_ELEMENTS:
        raise InvalidInput(
            f"tensor '{tensor}': shape {shape} is empty but its other dimensions multiply past {MAX_ELEMENTS}"
        )
    return count


def _not_a_shape(shape: Any, tensor: str) -> InvalidInput:
    return InvalidInput(f"tensor '{tensor}': shape must be a list of non-negative integers, got {_brief(shape)}")


def _brief(value: Any) -> str:
    """`value` for an error message, cut short: a shape may be as long as the body that carried it."""
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:200]}..."


def flat_values(data: list, where: str) -> list:
    """The values of nested lists `data` in row-major order (`data` itself when flat), flattened a level at a time
    in C (~30 ns a value); `where` names the data in errors: lists beside values at one level are ragged, and no
    array nests deeper than `MAX_DIMS`."""
    level = data
    for _ in range(MAX_DIMS):
        types = set(map(type, level))
        if list not in types:
            return level
        if len(types) > 1:
            raise InvalidInput(f"{where} is ragged; nested lists must be rectangular")
        level = list(chain.from_iterable(level))
    raise InvalidInput(f"{where} nests lists deeper than {MAX_DIMS} levels")


def _size_mismatch(tensor: str, shape: list[int], count: int, found: int) -> InvalidInput:
    return InvalidInput(f"tensor '{tensor}': shape {shape} holds {count} elements but data has {found}")


def from_json(data: Any, shape: Any, datatype: str, tensor: str, text_size: int | None = None) -> np.ndarray:
    """Decode a tensor's JSON `data` (flat or nested, row-major) into an array of `shape`.

    `text_size` is the length of the JSON text `data` was parsed from (None: unknown, taken as large). BYTES
    data's (flattened) list is reused: each string is replaced by its UTF-8 bytes, so the strings are freed as the
    bytes are made.
    """
    dtype = dtype_of(datatype, tensor)
    count = element_count(shape, tensor)
    if not isinstance(data, list):
        data = [data]
    elif data and type(data[0]) is not list and len(data) != count:  # flat: known wrong before any conversion
        raise _size_mismatch(tensor, shape, count, len(data))
    if datatype == "BYTES":
        array = _bytes_from_json(flat_values(data, f"tensor '{tensor}': data"), count, shape, tensor)
    else:
        array = _numbers_from_json(data, dtype, datatype, tensor, text_size)
    if array.size != count:
        raise _size_mismatch(tensor, shape, count, array.size)
    return array.reshape(shape)


def _numbers_from_json(data: list, dtype: np.dtype, datatype: str, tensor: str, text_size: int | None) -> np.ndarray:
    if text_size is None or text_size > TEXT_LOOKED_THROUGH_ABOVE:  # no string may reach numpy (see above)
        if str in set(map(type, flat_values(data, f"tensor '{tensor}': data"))):
            raise _not_numbers(tensor, datatype, dtype)
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):
        raise InvalidInput(f"tensor '{tensor}': data is ragged; nested lists must be rectangular") from None
    kind = array.dtype.kind
    if array.size == 0:
        return array.astype(dtype)
    if datatype == "BOOL":
        if kind != "b":
            raise _not_numbers(tensor, datatype, dtype)
        return array
    if dtype.kind in "iu":
        return _integers(data, array, dtype, datatype, tensor)
    if kind not in "iuf":
        raise _not_numbers(tensor, datatype, dtype)
    return array.astype(dtype, copy=False)


def _not_numbers(tensor: str, datatype: str, dtype: np.dtype) -> InvalidInput:
    wanted = {"b": "true or false", "i": "integers", "u": "integers"}.get(dtype.kind, "numbers")
    return InvalidInput(f"tensor '{tensor}': {datatype} data must be {wanted}")


def _integers(data: list, array: np.ndarray, dtype: np.dtype, datatype: str, tensor: str) -> np.ndarray:
    out_of_range = InvalidInput(f"tensor '{tensor}': a value is out of range for {datatype}")
    if array.dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise out_of_range
        return array.astype(dtype, copy=False)
    # numpy infers floats (or objects) for integers beyond int64; only whole Python ints are accepted
    if array.dtype.kind not in "fO" or set(map(type, flat_values(data, f"tensor '{tensor}': data"))) != {int}:
        raise _not_numbers(tensor, datatype, dtype)
    try:
        return np.asarray(data, dtype=dtype)
    except OverflowError:
        raise out_of_range from None


def _bytes_from_json(items: list, count: int, shape: list[int], tensor: str) -> np.ndarray:
    """BYTES elements from the JSON strings `items` (flat), checked against the shape's `count` first."""
    if len(items) != count:
        raise _size_mismatch(tensor, shape, count, len(items))
    for i, item in enumerate(items):
        if type(item) is not str:
            raise InvalidInput(f"tensor '{tensor}': BYTES data must be strings, got {type(item).__name__}")
        items[i] = item.encode()
    array = np.empty(count, dtype=object)
    array[:] = items
    return array


def to_json(array: np.ndarray, tensor: str) -> Any:
    """Flat row-major JSON data for an array: numeric arrays stay numpy (orjson serialises them natively)."""
    if array.dtype.kind not in "OSU":
        if array.ndim == 1 and array.flags.c_contiguous:  # (a model's usual output: no view to make)
            return array
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
    offset, end = 0, len(raw)
    if count * _LENGTH.size > end:
        raise InvalidInput(
            f"tensor '{tensor}': shape holds {count} elements but {end} bytes of BYTES data hold at most "
            f"{end // _LENGTH.size} (each has a 4-byte length prefix)"
        )
    array = np.empty(count, dtype=object)
    found = 0
    while offset < end:
        if offset + 4 > end:
            raise InvalidInput(f"tensor '{tensor}': BYTES data ends inside a length prefix")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInput(f"tensor '{tensor}': a BYTES element runs past the end of its data")
        if found == count:
            found += 1
            break
        array[found] = bytes(raw[offset : offset + length])
        found += 1
        offset += length
    if found != count:
        raise InvalidInput(f"tensor '{tensor}': shape holds {count} elements but data has {found}")
    return array
