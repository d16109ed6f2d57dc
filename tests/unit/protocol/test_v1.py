import numpy as np
import orjson
import pytest

from wharf.errors import InvalidInput
from wharf.protocol import v1
from wharf.protocol.v2 import InferResponse, Tensor


def test_instances_become_one_input() -> None:
    request = v1.decode_request(b'{"instances": [[1, 2], [3, 4]]}', "input-0")
    assert request.inputs[0].name == "input-0"
    assert request.inputs[0].data.tolist() == [[1, 2], [3, 4]]


def test_strings_become_bytes() -> None:
    request = v1.decode_request(b'{"inputs": ["a", "b"]}', "text")
    assert request.inputs[0].datatype == "BYTES"
    assert list(request.inputs[0].data) == [b"a", b"b"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "malformed JSON"),
        (b'{"instances": []}', "non-empty list"),
        (b'{"instances": [[1], [2, 3]]}', "ragged"),
        (b'{"instances": [{"a": 1}]}', "numbers, booleans or strings"),
        (b'{"instances": [1], "inputs": [1]}', "exactly one"),
        (b"{}", "exactly one"),
    ],
)
def test_bad_v1_requests(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        v1.decode_request(body, "x")


def test_predictions_keep_the_output_shape() -> None:
    response = InferResponse("m", [Tensor("y", np.array([[0.1, 0.9], [0.8, 0.2]]))])
    assert orjson.loads(v1.encode_response(response)) == {"predictions": [[0.1, 0.9], [0.8, 0.2]]}


def test_several_outputs_become_rows() -> None:
    response = InferResponse(
        "m", [Tensor("label", np.array([1, 0])), Tensor("text", np.array([b"a", b"b"], dtype=object))]
    )
    assert orjson.loads(v1.encode_response(response)) == {
        "predictions": [{"label": 1, "text": "a"}, {"label": 0, "text": "b"}]
    }


def test_a_v1_answer_is_a_valid_request_for_chaining() -> None:
    request = v1.decode_request(b'{"predictions": [[2.0]]}', "x")
    assert request.inputs[0].data.tolist() == [[2.0]]


def test_nested_json_keeps_the_shape_of_numbers_and_strings() -> None:
    numbers = v1.nested_json(np.arange(6).reshape(2, 3), "n")
    assert isinstance(numbers, np.ndarray) and numbers.tolist() == [[0, 1, 2], [3, 4, 5]]
    words = np.array([[b"a", "b"], [b"\xc3\xa9", b""]], dtype=object)
    assert v1.nested_json(words, "w") == [["a", "b"], ["\u00e9", ""]]
    assert v1.nested_json(np.empty((0, 2), dtype=object), "e") == []


def test_bytes_outputs_that_are_not_utf8_name_the_tensor() -> None:
    response = InferResponse("m", [Tensor("raw", np.array([b"ok", b"\xff\xfe"], dtype=object))])
    with pytest.raises(InvalidInput, match="tensor 'raw' holds bytes that are not UTF-8"):
        v1.encode_response(response)
    rows = InferResponse("m", [Tensor("n", np.array([1, 2])), Tensor("raw", np.array([b"a", b"\xff"], dtype=object))])
    with pytest.raises(InvalidInput, match="tensor 'raw'"):
        v1.encode_response(rows)
