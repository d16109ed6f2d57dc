"""Parameters gRPC cannot carry: the sender's mistake in a request, the server's fault in a response."""

from __future__ import annotations

import numpy as np
import pytest

from wharf.errors import InvalidInput, WharfError
from wharf.protocol.grpc import codec
from wharf.protocol.v2 import InferRequest, InferResponse, RequestedOutput, Tensor


def _inputs() -> list[Tensor]:
    return [Tensor("x", np.array([1.0]))]


@pytest.mark.parametrize(
    "request_",
    [
        InferRequest(_inputs(), parameters={"bad": [1]}),
        InferRequest(_inputs(), outputs=[RequestedOutput("y", {"bad": {"a": 1}})]),
        InferRequest([Tensor("x", np.array([1.0]), parameters={"bad": None})]),
    ],
)
def test_a_request_parameter_without_grpc_form_is_invalid_input(request_: InferRequest) -> None:
    with pytest.raises(InvalidInput, match="parameter 'bad' .* has no gRPC InferParameter form") as raised:
        codec.encode_request(request_, "m")
    assert raised.value.http_status == 400 and raised.value.grpc_code == "INVALID_ARGUMENT"


def test_a_response_parameter_without_grpc_form_stays_a_server_error() -> None:
    response = InferResponse("m", [Tensor("y", np.array([1.0]))], parameters={"bad": [1]})
    with pytest.raises(WharfError, match="model 'm' answered parameter 'bad'") as raised:
        codec.encode_response(response, raw=False)
    assert not isinstance(raised.value, InvalidInput) and raised.value.http_status == 500
