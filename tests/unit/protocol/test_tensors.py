import numpy as np
import pytest

from wharf.errors import InvalidInput
from wharf.protocol import tensors

from tests.unit.protocol.memory import allocated_at_most

NUMERIC = {
    "BOOL": [True, False, True, True],
    "UINT8": [0, 1, 254, 255],
    "UINT16": [0, 1, 65534, 65535],
    "UINT32": [0, 1, 2**32 - 2, 2**32 - 1],
    "UINT64": [0, 1, 2**63, 2**64 - 1],
    "INT8": [-128, -1, 0, 127],
    "INT16": [-(2**15), -1, 0, 2**15 - 1],
    "INT32": [-(2**31), -1, 0, 2**31 - 1],
    "INT64": [-(2**63), -1, 0, 2**63 - 1],
    "FP16": [0.5, -1.0, 2.0, 65504.0],
    "FP32": [0.25, -1.5, 3.0, 1024.0],
    "FP64": [0.1, -1e300, 3.0, 1e-300],
}


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_json_round_trip_every_numeric_datatype(datatype: str) -> None:
    values = NUMERIC[datatype]
    array = tensors.from_json(values, [2, 2], datatype, "x")
    assert array.shape == (2, 2)
    assert array.dtype == tensors.DTYPES[datatype]
    assert tensors.datatype_of(array) == datatype
    assert tensors.to_json(array, "x").tolist() == values


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_binary_round_trip_every_numeric_datatype(datatype: str) -> None:
    array = tensors.from_json(NUMERIC[datatype], [4], datatype, "x")
    raw = tensors.to_bytes(array, datatype)
    assert len(raw) == 4 * tensors.DTYPES[datatype].itemsize
    assert np.array_equal(tensors.from_bytes(raw, [1, 4], datatype, "x").reshape(-1), array)


def test_raw_bytes_are_little_endian() -> None:
    assert tensors.to_bytes(np.array([1], dtype=">i4"), "INT32") == b"\x01\x00\x00\x00"


def test_nested_data_is_row_major() -> None:
    array = tensors.from_json([[1, 2, 3], [4, 5, 6]], [3, 2], "INT32", "x")
    assert array.tolist() == [[1, 2], [3, 4], [5, 6]]


def test_bytes_json_and_binary_round_trip() -> None:
    array = tensors.from_json(["a", "", "héllo"], [3], "BYTES", "s")
    assert list(array) == [b"a", b"", "héllo".encode()]
    assert tensors.to_json(array, "s") == ["a", "", "héllo"]
    raw = tensors.to_bytes(array, "BYTES")
    assert raw[:5] == b"\x01\x00\x00\x00a"
    assert list(tensors.from_bytes(raw, [3], "BYTES", "s")) == list(array)


@pytest.mark.parametrize(
    ("data", "shape", "datatype", "message"),
    [
        ([1, 2, 3], [2, 2], "FP32", "holds 4 elements but data has 3"),
        ([1.0], [1], "COMPLEX", "unknown datatype"),
        (["a"], [1], "FP32", "must be numbers"),
        ([1.5], [1], "INT32", "must be integers"),
        ([300], [1], "UINT8", "out of range"),
        ([-1], [1], "UINT32", "out of range"),
        ([1, 0], [2], "BOOL", "true or false"),
        ([[1, 2], [3]], [3], "FP32", "ragged"),
        ([1], [-1], "FP32", "non-negative integers"),
        ([1], "1", "FP32", "non-negative integers"),
        ([1], [1.0], "FP32", "non-negative integers"),
        ([1, None], [2], "FP32", "must be numbers"),
        ([1], [1], "BYTES", "must be strings"),
    ],
)
def test_bad_json_tensors_are_rejected(data, shape, datatype, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match=message):
        tensors.from_json(data, shape, datatype, "x")


def test_huge_declared_shape_fails_without_allocating() -> None:
    with pytest.raises(InvalidInput, match="holds 1000000 elements but data has 1"):
        tensors.from_json([1.0], [1000, 1000], "FP32", "x")
    with pytest.raises(InvalidInput, match="needs"):
        tensors.from_bytes(b"\x00" * 4, [1000, 1000], "FP32", "x")
    with pytest.raises(InvalidInput, match="4 bytes of BYTES data hold at most 1"):
        tensors.from_bytes(b"\x00" * 4, [2**40], "BYTES", "x")


BAD_SHAPES = [
    ([0, 2**63 - 1], "multiply past"),
    ([0, 2**40, 2**40], "multiply past"),
    ([3, 2**62, 0], "multiply past"),
    ([10**9, 10**9], "holds 1000000000000000000 elements|needs|hold at most 0"),
    ([2**64], "holds 18446744073709551616 elements|needs|hold at most 0"),
    ([0] * 65, "65 dimensions; at most 64"),
    ([1] * 65, "65 dimensions; at most 64"),
    ([2, -1], "non-negative integers"),
    ([2, True], "non-negative integers"),
]


@pytest.mark.parametrize(("shape", "message"), BAD_SHAPES)
@pytest.mark.parametrize("datatype", ["FP32", "INT64", "BOOL", "BYTES"])
def test_shapes_no_array_can_have_are_refused_before_anything_is_made(shape, message, datatype) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match=message):
        tensors.from_json([], shape, datatype, "x")
    with pytest.raises(InvalidInput, match=message):
        tensors.from_bytes(b"", shape, datatype, "x")


def test_empty_tensors_keep_their_shape() -> None:
    assert tensors.from_json([], [0, 4], "FP32", "x").shape == (0, 4)
    assert tensors.from_bytes(b"", [0, 2**20], "BYTES", "x").shape == (0, 2**20)
    assert tensors.from_json([1.0], [], "FP64", "x").shape == ()


def test_deeply_nested_data_is_refused_not_a_crash() -> None:
    deep: list = ["a"]
    for _ in range(1000):
        deep = [deep]
    for datatype in ("BYTES", "FP32", "INT64"):
        with pytest.raises(InvalidInput, match="ragged|deeper than 64 levels"):
            tensors.from_json(deep, [1], datatype, "x")
    with pytest.raises(InvalidInput, match="deeper than 64 levels"):
        tensors.from_json(deep, [1], "BYTES", "x")


def test_strings_in_numeric_data_are_refused_before_numpy_widens_them() -> None:
    # numpy would make 5,000 elements as wide as the long string: 400 MB from a 40 kB text
    data = ["x" * 20_000] + ["a"] * 4_999
    for datatype, wanted in (("FP32", "numbers"), ("INT32", "integers"), ("BOOL", "true or false")):
        with allocated_at_most(20 * 2**20), pytest.raises(InvalidInput, match=f"{datatype} data must be {wanted}"):
            tensors.from_json(data, [5_000], datatype, "x", text_size=40_000)
    assert tensors.from_json([1, 2], [2], "FP32", "x", text_size=10).tolist() == [1.0, 2.0]  # small: no look


def test_bytes_data_of_the_wrong_length_is_refused_before_it_is_converted() -> None:
    data = ["a"] * 10
    with pytest.raises(InvalidInput, match="holds 11 elements but data has 10"):
        tensors.from_json(data, [11], "BYTES", "x")
    assert data == ["a"] * 10  # not a single element was converted
    assert tensors.from_json([["a", "b"], ["c", "d"]], [2, 2], "BYTES", "x").tolist() == [[b"a", b"b"], [b"c", b"d"]]
    with pytest.raises(InvalidInput, match="ragged"):
        tensors.from_json(["a", ["b"]], [2], "BYTES", "x")


@pytest.mark.parametrize(
    ("raw", "count", "message"),
    [
        (b"\x01\x00", 0, "inside a length prefix"),
        (b"\x05\x00\x00\x00ab", 1, "runs past the end"),
        (b"\x01\x00\x00\x00a\x01\x00\x00\x00b", 1, "holds 1 elements but data has 2"),
        (b"\x01\x00\x00\x00a", 2, "5 bytes of BYTES data hold at most 1"),
        (b"\x00\x00\x00\x00" * 2, 3, "8 bytes of BYTES data hold at most 2"),
        (b"\x05\x00\x00\x00abcde\x00\x00\x00\x00", 3, "holds 3 elements but data has 2"),
    ],
)
def test_bad_raw_bytes_are_rejected(raw: bytes, count: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        tensors.from_bytes(raw, [count], "BYTES", "s")


def test_non_utf8_bytes_need_binary_output() -> None:
    with pytest.raises(InvalidInput, match="binary_data"):
        tensors.to_json(np.array([b"\xff"], dtype=object), "s")
