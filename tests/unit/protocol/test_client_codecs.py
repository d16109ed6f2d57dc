"""The client's side of the V2 codecs (JSON and gRPC): what it encodes the server decodes, and the reverse."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tests.unit.protocol.test_grpc_codec import VALUES
from wharf.errors import InvalidInput
from wharf.protocol import tensors, v2
from wharf.protocol.grpc import codec
from wharf.protocol.v2 import InferRequest, InferResponse, RequestedOutput, Tensor

# JSON carries BYTES as strings, so only UTF-8 elements travel in it.
JSON_VALUES = {**VALUES, "BYTES": [b"", b"a", "\u00e9".encode(), b"z"]}


def _array(datatype: str, values: dict[str, list]) -> np.ndarray:
    array = np.empty(4, dtype=object) if datatype == "BYTES" else np.empty(4, dtype=tensors.DTYPES[datatype])
    array[:] = values[datatype]
    return array.reshape(2, 2)


def _request(datatype: str, values: dict[str, list]) -> InferRequest:
    return InferRequest(
        inputs=[Tensor("x", _array(datatype, values), datatype, {"layout": "NC"}), Tensor("n", np.array([1, 2]))],
        id="r-1",
        parameters={"flag": True, "scale": 0.5},
        outputs=[RequestedOutput("y", {"top": 2}), RequestedOutput("z")],
    )


def _response(datatype: str, values: dict[str, list]) -> InferResponse:
    return InferResponse(
        model_name="m",
        model_version="2",
        id="r-1",
        parameters={"note": "ok"},
        outputs=[Tensor("y", _array(datatype, values), datatype, {"unit": "cm"}), Tensor("n", np.array([1.5]))],
    )


def _assert_tensors_equal(found: list[Tensor], expected: list[Tensor]) -> None:
    assert [(t.name, t.datatype, t.shape, t.parameters) for t in found] == [
        (t.name, t.datatype, t.shape, t.parameters) for t in expected
    ]
    for a, b in zip(found, expected, strict=True):
        assert a.data.dtype == b.data.dtype
        assert a.data.tolist() == b.data.tolist()


def _assert_requests_equal(found: InferRequest, expected: InferRequest) -> None:
    assert (found.id, found.parameters, found.outputs) == (expected.id, expected.parameters, expected.outputs)
    _assert_tensors_equal(found.inputs, expected.inputs)


def _assert_responses_equal(found: InferResponse, expected: InferResponse) -> None:
    assert (found.model_name, found.model_version, found.id, found.parameters) == (
        expected.model_name,
        expected.model_version,
        expected.id,
        expected.parameters,
    )
    _assert_tensors_equal(found.outputs, expected.outputs)


# ---- JSON -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("datatype", sorted(JSON_VALUES))
def test_json_request_round_trip(datatype: str) -> None:
    request = _request(datatype, JSON_VALUES)
    body, header_length = v2.encode_request(request)
    assert header_length is None
    _assert_requests_equal(v2.decode_request(body), request)


@pytest.mark.parametrize("datatype", sorted(VALUES))
def test_binary_request_round_trip(datatype: str) -> None:
    request = _request(datatype, VALUES)
    body, header_length = v2.encode_request(request, binary=True)
    assert header_length is not None and orjson.loads(body[:header_length])["inputs"][0]["parameters"] == {
        "layout": "NC",
        "binary_data_size": len(tensors.to_bytes(request.inputs[0].data, datatype)),
    }
    _assert_requests_equal(v2.decode_request(body, header_length), request)


@pytest.mark.parametrize("datatype", sorted(JSON_VALUES))
def test_json_response_round_trip(datatype: str) -> None:
    response = _response(datatype, JSON_VALUES)
    body, header_length = v2.encode_response(response)
    assert header_length is None
    _assert_responses_equal(v2.decode_response(body), response)


@pytest.mark.parametrize("datatype", sorted(VALUES))
def test_binary_response_round_trip(datatype: str) -> None:
    response = _response(datatype, VALUES)
    asked = InferRequest(inputs=[], parameters={"binary_data_output": True})
    body, header_length = v2.encode_response(response, asked)
    assert header_length is not None
    _assert_responses_equal(v2.decode_response(body, header_length), response)


def test_minimal_request_and_response_leave_optional_fields_out() -> None:
    body, _ = v2.encode_request(InferRequest(inputs=[Tensor("x", np.array([1.0], dtype=np.float32))]))
    assert orjson.loads(body) == {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    response = v2.decode_response(b'{"model_name": "m", "outputs": []}')
    assert response == InferResponse(model_name="m", outputs=[])


def _answer(*outputs: dict) -> bytes:
    return orjson.dumps({"model_name": "m", "outputs": list(outputs)})


_NAMELESS = _answer({"shape": [1]})


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b"[]", None, "JSON object"),
        (b'{"outputs": []}', None, "'model_name'"),
        (b'{"model_name": "m"}', None, "'outputs' must be a list"),
        (_answer({"name": "y", "shape": [2], "datatype": "FP32", "data": [1]}), None, "tensor 'y': shape"),
        (
            _answer({"name": "y", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}),
            None,
            "output 'y' has binary_data_size but the response has no binary data",
        ),
        (_NAMELESS + b"xx", len(_NAMELESS), "outputs\\[0\\]: 'name'"),
    ],
)
def test_bad_responses_name_the_problem(body: bytes, header_length: int | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        v2.decode_response(body, header_length)


# ---- gRPC -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("datatype", sorted(VALUES))
def test_grpc_request_round_trip(datatype: str, raw: bool) -> None:
    request = _request(datatype, VALUES)
    message = codec.encode_request(request, "m", "3", raw=raw)
    assert (message.model_name, message.model_version) == ("m", "3")
    # FP16 has no typed contents field, so it makes the whole message raw
    assert len(message.raw_input_contents) == (2 if raw or datatype == "FP16" else 0)
    _assert_requests_equal(codec.decode_request(message), request)


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("datatype", sorted(VALUES))
def test_grpc_response_round_trip(datatype: str, raw: bool) -> None:
    response = _response(datatype, VALUES)
    message = codec.encode_response(response, raw=raw)
    assert len(message.raw_output_contents) == (2 if raw or datatype == "FP16" else 0)
    _assert_responses_equal(codec.decode_response(message), response)


def test_grpc_request_without_version_or_requested_outputs() -> None:
    message = codec.encode_request(InferRequest(inputs=[Tensor("x", np.array([1, 2]))]), "m", None)
    assert message.model_version == "" and not message.outputs and message.id == ""
    decoded = codec.decode_request(message)
    assert decoded.id is None and decoded.outputs is None and decoded.parameters == {}


def test_grpc_response_with_mismatched_raw_contents_is_refused() -> None:
    message = codec.encode_response(_response("INT32", VALUES), raw=True)
    message.raw_output_contents.pop()
    with pytest.raises(InvalidInput, match="raw_output_contents has 1 entries for 2 outputs"):
        codec.decode_response(message)
    message = codec.encode_response(_response("INT32", VALUES), raw=True)
    message.outputs[0].contents.int_contents.extend([1, 2, 3, 4])
    with pytest.raises(InvalidInput, match="output 'y' has contents but the response uses raw_output_contents"):
        codec.decode_response(message)
