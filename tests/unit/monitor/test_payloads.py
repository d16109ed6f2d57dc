"""Payload bodies as tables: V2 JSON, binary and gRPC, KServe V1, and what is refused."""

from __future__ import annotations

import numpy as np
import pytest

from wharf.errors import InvalidInput
from wharf.gateway.payloads import GRPC_REQUEST, GRPC_RESPONSE
from wharf.monitor.payloads import request_table, response_table
from wharf.protocol import v2
from wharf.protocol.grpc import codec

JSON = "application/json"


def _request(*tensors: v2.Tensor) -> v2.InferRequest:
    return v2.InferRequest(inputs=list(tensors))


def test_a_single_2d_tensor_is_one_column_per_feature_and_positional() -> None:
    body, _ = v2.encode_request(_request(v2.Tensor("input-0", np.arange(8, dtype=np.float32).reshape(2, 4))))
    table = request_table(body, JSON)
    assert table.names == ("input-0-0", "input-0-1", "input-0-2", "input-0-3") and table.rows == 2
    assert table.positional and table.datatypes == ("FP32",) * 4
    np.testing.assert_array_equal(table.columns[1], [1, 5])


def test_named_tensors_are_one_column_each_and_n_by_1_keeps_the_name() -> None:
    request = _request(v2.Tensor("age", np.array([30, 40])), v2.Tensor("income", np.array([[1.5], [2.5]])))
    table = request_table(v2.encode_request(request)[0], JSON)
    assert table.names == ("age", "income") and not table.positional and table.datatypes == ("INT64", "FP64")


def test_binary_tensor_extension_and_text_columns() -> None:
    request = _request(
        v2.Tensor("x", np.array([1.0, 2.0])), v2.Tensor("city", np.array([b"Oslo", b"Lima"], dtype=object))
    )
    body, length = v2.encode_request(request, binary=True)
    table = request_table(body, JSON, str(length))
    assert table.names == ("x", "city") and list(table.columns[1]) == ["Oslo", "Lima"]


def test_grpc_bodies() -> None:
    request = _request(v2.Tensor("input-0", np.array([[1.0, 2.0]], dtype=np.float32)))
    table = request_table(codec.encode_request(request, "iris").SerializeToString(), GRPC_REQUEST)
    assert table.names == ("input-0-0", "input-0-1")
    response = codec.encode_response(v2.InferResponse("iris", [v2.Tensor("predict", np.array([2]))]), raw=False)
    assert response_table(response.SerializeToString(), GRPC_RESPONSE).names == ("predict",)
    with pytest.raises(InvalidInput, match="not a inference.ModelInferRequest"):
        request_table(b"\xff\xff\xff", GRPC_REQUEST)


def test_v1_instances_and_predictions() -> None:
    table = request_table(b'{"instances": [[5.1, 3.5, 1.4, 0.2], [6.0, 3.0, 4.8, 1.8]]}', JSON)
    assert table.names == ("input-0-0", "input-0-1", "input-0-2", "input-0-3") and table.rows == 2
    assert response_table(b'{"predictions": [0, 2]}', JSON).names == ("output-0",)
    several = response_table(b'{"predictions": [{"label": "a", "score": 0.9}]}', JSON)
    assert several.names == ("label", "score") and list(several.columns[0]) == ["a"]
    named = request_table(b'{"instances": [{"age": 30, "city": "Oslo"}]}', JSON)
    assert named.names == ("age", "city") and not named.positional


def test_v2_response() -> None:
    body, _ = v2.encode_response(v2.InferResponse("iris", [v2.Tensor("predict", np.array([0, 2]))]))
    table = response_table(body, JSON)
    assert table.names == ("predict",) and table.rows == 2 and table.datatypes == ("INT64",)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "data": [1]}]}', "holds 2 elements"),
        (
            b'{"inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "data": [1, 2]},'
            b' {"name": "b", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}',
            "input 'b' has 3 rows but input 'a' has 2",
        ),
        (b'{"instances": [[1, 2], [3]]}', "ragged"),
    ],
)
def test_malformed_bodies_name_the_problem(body: bytes, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        request_table(body, JSON)
