import numpy as np
import orjson
import pytest

from wharf.errors import InvalidInput
from wharf.protocol import v1
from wharf.protocol.v2 import InferRequest, InferResponse, Tensor

from tests.unit.protocol.memory import allocated_at_most


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
        (b'{"instances": [[{"a": 1}]]}', "numbers, booleans, strings or"),
        (b'{"instances": [1, "a"]}', "mixes strings with other values"),
        (b'{"instances": [{"a": 1}, {"b": 2}]}', r"instance 1 names the inputs \['b'\], instance 0 names \['a'\]"),
        (b'{"instances": [{}]}', "must name at least one input"),
        (b'{"inputs": {"a": []}}', "'inputs.a' must be a non-empty list"),
        (b'{"instances": [{"b64": "not base64!"}]}', "must hold a base64 string"),
        (b'{"instances": [{"b64": 7}]}', "must hold a base64 string"),
        (b'{"instances": [1], "inputs": [1]}', "exactly one"),
        (b"{}", "exactly one"),
    ],
)
def test_bad_v1_requests(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        v1.decode_request(body, "x")


def test_row_format_objects_name_several_inputs() -> None:
    body = (
        b'{"instances": [{"image": {"b64": "/wA="}, "key": "a", "size": [1, 2]},'
        b' {"image": {"b64": ""}, "key": "b", "size": [3, 4]}]}'
    )
    request = v1.decode_request(body, "ignored")
    assert [(t.name, t.datatype, t.shape) for t in request.inputs] == [
        ("image", "BYTES", [2]),
        ("key", "BYTES", [2]),
        ("size", "INT64", [2, 2]),
    ]
    assert request.inputs[0].data.tolist() == [b"\xff\x00", b""]


def test_columnar_inputs_name_each_input() -> None:
    request = v1.decode_request(b'{"inputs": {"x": [[1.5], [2.5]], "w": [{"b64": "AA=="}]}}', "ignored")
    assert [(t.name, t.data.tolist()) for t in request.inputs] == [("x", [[1.5], [2.5]]), ("w", [b"\x00"])]


def test_bytes_keep_trailing_nuls_and_strings_mix_with_binary() -> None:
    request = v1.decode_request(b'{"instances": [{"b64": "YQA="}, "b"]}', "x")
    assert request.inputs[0].data.tolist() == [b"a\x00", b"b"]


def test_requests_round_trip_through_the_v1_encoding() -> None:
    one = InferRequest([Tensor("x", np.array([[1, 2], [3, 4]]))], parameters={"method": "predict_proba"})
    decoded = v1.decode_request(v1.encode_request(one), "x")
    assert decoded.inputs[0].data.tolist() == [[1, 2], [3, 4]] and decoded.parameters == {"method": "predict_proba"}
    binary = np.array([b"\xff", b"ok"], dtype=object)
    several = InferRequest([Tensor("raw", binary), Tensor("n", np.array([1.0, 2.0]))])
    assert orjson.loads(v1.encode_request(several)) == {
        "inputs": {"raw": [{"b64": "/w=="}, {"b64": "b2s="}], "n": [1.0, 2.0]}
    }
    decoded = v1.decode_request(v1.encode_request(several), "unused")
    assert [(t.name, t.data.tolist()) for t in decoded.inputs] == [("raw", [b"\xff", b"ok"]), ("n", [1.0, 2.0])]


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
    rows = v1.decode_request(b'{"predictions": [{"label": 1, "p": 0.5}, {"label": 0, "p": 0.25}]}', "x")
    assert [(t.name, t.data.tolist()) for t in rows.inputs] == [("label", [1, 0]), ("p", [0.5, 0.25])]


def test_nested_json_keeps_the_shape_of_numbers_and_strings() -> None:
    numbers = v1.nested_json(np.arange(6).reshape(2, 3))
    assert isinstance(numbers, np.ndarray) and numbers.tolist() == [[0, 1, 2], [3, 4, 5]]
    words = np.array([[b"a", "b"], [b"\xc3\xa9", b""]], dtype=object)
    assert v1.nested_json(words) == [["a", "b"], ["\u00e9", ""]]
    assert v1.nested_json(np.empty((0, 2), dtype=object)) == []


def test_a_tensor_with_bytes_that_are_not_utf8_is_written_all_in_b64() -> None:
    response = InferResponse("m", [Tensor("raw", np.array([b"ok", b"\xff\xfe"], dtype=object))])
    assert orjson.loads(v1.encode_response(response)) == {"predictions": [{"b64": "b2s="}, {"b64": "//4="}]}
    rows = InferResponse("m", [Tensor("n", np.array([1, 2])), Tensor("raw", np.array([b"a", b"\xff"], dtype=object))])
    assert orjson.loads(v1.encode_response(rows)) == {
        "predictions": [{"n": 1, "raw": {"b64": "YQ=="}}, {"n": 2, "raw": {"b64": "/w=="}}]
    }


def test_parameters_are_passed_on_and_other_fields_left_alone() -> None:
    request = v1.decode_request(b'{"instances": [[1]], "parameters": {"method": "predict_proba"}, "route": "a"}', "x")
    assert request.parameters == {"method": "predict_proba"} and request.inputs[0].data.tolist() == [[1]]
    with pytest.raises(InvalidInput, match="'parameters' must be an object"):
        v1.decode_request(b'{"instances": [[1]], "parameters": [1]}', "x")


def test_rows_that_mix_objects_and_lists_are_named_as_such() -> None:
    with pytest.raises(InvalidInput, match="instance 1 is not an object like instance 0"):
        v1.decode_request(b'{"instances": [{"a": 1}, [1, 2]]}', "x")
    with pytest.raises(InvalidInput, match="'instances' mixes objects \\(rows naming inputs\\) with other rows"):
        v1.decode_request(b'{"instances": [[1, 2], {"a": 1}]}', "x")


def test_nesting_deeper_than_numpy_allows_is_refused_not_a_crash() -> None:
    deep = b'{"instances": ' + b"[" * 900 + b'{"b64": "aGk="}' + b"]" * 900 + b"}"
    with pytest.raises(InvalidInput, match="deeper than 64 levels"):
        v1.decode_request(deep, "x")


def test_one_long_string_does_not_widen_every_element() -> None:
    # numpy would give 5,000 elements the width of the long string (400 MB) before they became BYTES
    rows = ["x" * 20_000] + ["a"] * 4_999
    with allocated_at_most(20 * 2**20):
        data = v1.decode_request(orjson.dumps({"instances": rows}), "x").inputs[0].data
    assert data.dtype == object and data.shape == (5_000,) and data[1] == b"a"
