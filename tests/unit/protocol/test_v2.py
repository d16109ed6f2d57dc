import numpy as np
import orjson
import pytest

from wharf.errors import InvalidInput
from wharf.protocol import v2

from tests.unit.protocol.memory import allocated_at_most


def _request(**overrides):  # type: ignore[no-untyped-def]
    doc = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}], **overrides}
    return orjson.dumps(doc)


def test_decode_request_fields() -> None:
    body = _request(id="r1", parameters={"p": 1}, outputs=[{"name": "y", "parameters": {"binary_data": True}}])
    request = v2.decode_request(body)
    assert request.id == "r1"
    assert request.parameters == {"p": 1}
    assert request.inputs[0].data.dtype == np.float32
    assert request.inputs[0].shape == [1, 2]
    assert request.outputs == [v2.RequestedOutput("y", {"binary_data": True})]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1]", "JSON object"),
        (orjson.dumps({"inputs": []}), "non-empty list"),
        (orjson.dumps({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}), "'name'"),
        (orjson.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}), "neither 'data'"),
        (_request(extra=1), "unknown request field"),
        (_request(id=5), "'id' must be a string"),
        (_request(parameters=[1]), "'parameters' must be a JSON object"),
        (_request(outputs=[{"nom": "y"}]), "outputs\\[0\\]"),
        (
            orjson.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}] * 2}),
            "unique",
        ),
    ],
)
def test_bad_requests_name_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        v2.decode_request(body)


def test_binary_inputs_follow_the_json_header() -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "a", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}},
                {"name": "b", "shape": [1], "datatype": "FP64", "data": [0.5]},
                {"name": "c", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}},
            ]
        }
    )
    raw = np.array([7, 9], dtype="<i4").tobytes() + b"\x02\x00\x00\x00hi"
    request = v2.decode_request(header + raw, len(header))
    named = request.named()
    assert named["a"].tolist() == [7, 9]
    assert named["b"].tolist() == [0.5]
    assert list(named["c"]) == [b"hi"]


@pytest.mark.parametrize(
    ("size", "extra", "message"),
    [(16, b"", "runs past"), (8, b"\x00", "1 bytes of binary data follow")],
)
def test_binary_sizes_must_add_up(size: int, extra: bytes, message: str) -> None:
    header = orjson.dumps(
        {"inputs": [{"name": "a", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": size}}]}
    )
    with pytest.raises(InvalidInput, match=message):
        v2.decode_request(header + b"\x00" * 8 + extra, len(header))


def test_header_length_must_fit_the_body() -> None:
    with pytest.raises(InvalidInput, match="does not fit"):
        v2.decode_request(b"{}", 10)


def test_encode_json_response() -> None:
    response = v2.InferResponse("m", [v2.Tensor("y", np.array([[1.5, 2.5]], dtype=np.float32))], "1", "r1")
    body, header_length = v2.encode_response(response)
    assert header_length is None
    assert orjson.loads(body) == {
        "model_name": "m",
        "model_version": "1",
        "id": "r1",
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.5]}],
    }


def test_encode_binary_outputs_when_asked() -> None:
    request = v2.decode_request(
        _request(
            parameters={"binary_data_output": True},
            outputs=[{"name": "y"}, {"name": "z", "parameters": {"binary_data": False}}],
        )
    )
    response = v2.InferResponse(
        "m", [v2.Tensor("y", np.array([1, 2], dtype=np.int64)), v2.Tensor("z", np.array([3], dtype=np.int64))]
    )
    body, header_length = v2.encode_response(response, request)
    assert header_length is not None
    header = orjson.loads(body[:header_length])
    y, z = header["outputs"]
    assert y["parameters"] == {"binary_data_size": 16} and "data" not in y
    assert z["data"] == [3]
    assert np.frombuffer(body[header_length:], dtype="<i8").tolist() == [1, 2]


def test_strings_in_a_large_numeric_tensor_are_refused_before_numpy_widens_them() -> None:
    body = _request(inputs=[{"name": "x", "shape": [5_000], "datatype": "FP32", "data": ["x" * 20_000] + [1] * 4_999}])
    with allocated_at_most(20 * 2**20), pytest.raises(InvalidInput, match="FP32 data must be numbers"):
        v2.decode_request(body)


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [([0, 2**63 - 1], "multiply past"), ([1] * 65, "at most 64"), ([2**62, 4], "holds|needs"), ([-3], "non-negative")],
)
def test_impossible_shapes_are_invalid_input_in_json_and_binary(shape: list[int], fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        v2.decode_request(_request(inputs=[{"name": "x", "shape": shape, "datatype": "FP32", "data": []}]))
    header = _request(inputs=[{"name": "x", "shape": shape, "datatype": "FP32", "parameters": {"binary_data_size": 0}}])
    with pytest.raises(InvalidInput, match=fragment):
        v2.decode_request(header, len(header))
