"""`InferenceClient` against a real `wharf serve` process over V1 REST, V2 REST and V2 gRPC, and its errors."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import numpy as np
import pytest

from tests.integration.conftest import RunningServer
from tests.unit.protocol.test_client_codecs import JSON_VALUES, VALUES
from wharf.client import InferenceClient, SyncInferenceClient
from wharf.errors import ConfigurationError, InvalidInput, NotFound, RequestTimeout, ServerUnreachable, Unimplemented
from wharf.protocol import tensors
from wharf.protocol.v2 import InferRequest, Tensor

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
PROTOCOLS = ["v1", "v2", "grpc-v2"]
UNKNOWN = "model 'nope' is not in the repository"  # what the server says of a model it does not know


def _client(server: RunningServer, protocol: str, **options: object) -> InferenceClient:
    return InferenceClient(server.url, **_options(server, protocol), **options)  # type: ignore[arg-type]


def _options(server: RunningServer, protocol: str) -> dict[str, object]:
    return {"grpc_target": f"127.0.0.1:{server.grpc_port}", "protocol": protocol, "timeout_s": 10}


def _every_datatype(values: dict[str, list]) -> InferRequest:
    inputs = []
    for datatype, items in sorted(values.items()):
        array = np.empty(4, dtype=object if datatype == "BYTES" else tensors.DTYPES[datatype])
        array[:] = items
        inputs.append(Tensor(datatype.lower(), array.reshape(2, 2), datatype))
    return InferRequest(inputs=inputs, id="req-7", parameters={"trace": "yes"})


@pytest.mark.parametrize(("protocol", "values"), [("v2", JSON_VALUES), ("grpc-v2", VALUES)])
async def test_every_datatype_round_trips_through_the_echo_model(
    echo_server: RunningServer, protocol: str, values: dict[str, list]
) -> None:
    request = _every_datatype(values)
    async with _client(echo_server, protocol) as client:
        response = await client.infer("echo", request)
    assert response.model_name == "echo" and response.id == "req-7" and response.parameters == {"trace": "yes"}
    assert [(t.name, t.datatype, t.shape) for t in response.outputs] == [
        (t.name, t.datatype, t.shape) for t in request.inputs
    ]
    for found, sent in zip(response.outputs, request.inputs, strict=True):
        assert found.data.dtype == sent.data.dtype and found.data.tolist() == sent.data.tolist()


async def test_v1_carries_rows_named_inputs_and_binary_values(echo_server: RunningServer) -> None:
    rows = np.array([[1.5, 2.0], [3.0, 4.25]])
    async with _client(echo_server, "v1") as client:
        response = await client.infer("echo", InferRequest(inputs=[Tensor("x", rows)]))
        (predictions,) = response.outputs
        assert predictions.name == "predictions" and predictions.data.tolist() == rows.tolist()
        words = await client.infer("echo", InferRequest(inputs=[Tensor("w", np.array([b"a", b"b"], dtype=object))]))
        assert words.outputs[0].data.tolist() == [b"a", b"b"]
        assert await client.predict("echo", {"instances": [[1, 2]]}) == {"predictions": [[1, 2]]}
        binary = np.array([b"\xff\x00", b"ok"], dtype=object)
        both = await client.infer("echo", InferRequest(inputs=[Tensor("x", rows), Tensor("raw", binary)]))
        assert [(t.name, t.data.tolist()) for t in both.outputs] == [("x", rows.tolist()), ("raw", binary.tolist())]
        row_format = {"instances": [{"image": {"b64": "/wA="}, "key": "a"}, {"image": {"b64": "YQ=="}, "key": "b"}]}
        assert await client.predict("echo", row_format) == {
            "predictions": [{"image": {"b64": "/wA="}, "key": "a"}, {"image": {"b64": "YQ=="}, "key": "b"}]
        }
        with pytest.raises(InvalidInput, match="no model versions"):
            await client.infer("echo", InferRequest(inputs=[Tensor("x", rows)]), version="1")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_sync_client_makes_the_same_calls_without_an_event_loop(echo_server: RunningServer, protocol: str) -> None:
    rows = np.array([[1.5, 2.0]])
    with SyncInferenceClient(echo_server.url, **_options(echo_server, protocol)) as client:
        assert client.ready("echo")
        for _ in range(2):  # the second call reuses the loop, the connection and the gRPC channel
            assert client.infer("echo", InferRequest(inputs=[Tensor("x", rows)])).outputs[0].data.tolist() == [[1.5, 2]]
        assert client.predict("echo", {"instances": [[1, 2]]}) == {"predictions": [[1, 2]]}
        with pytest.raises(NotFound, match=UNKNOWN):
            client.infer("nope", InferRequest(inputs=[Tensor("x", rows)]))
        with pytest.raises(Unimplemented, match="model 'echo' does not explain its predictions"):
            client.explain("echo", InferRequest(inputs=[Tensor("x", rows)]))
        client.close()  # and again as the block ends: nothing more


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_ready_and_extra_headers(echo_server: RunningServer, protocol: str) -> None:
    options = {"headers": {"host": "echo.default.example.com"}, "metadata": {"x-wharf-service": "default/echo"}}
    async with _client(echo_server, protocol, **options) as client:
        assert await client.ready("echo") is True
        with pytest.raises(NotFound, match=UNKNOWN):
            await client.ready("nope")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_unknown_model_is_not_found_with_the_servers_message(echo_server: RunningServer, protocol: str) -> None:
    async with _client(echo_server, protocol) as client:
        with pytest.raises(NotFound) as raised:
            await client.infer("nope", InferRequest(inputs=[Tensor("x", np.array([1.0]))]))
    assert raised.value.message == UNKNOWN


@pytest.mark.parametrize("protocol", ["v2", "grpc-v2"])
async def test_bad_input_is_invalid_input_with_the_servers_message(echo_server: RunningServer, protocol: str) -> None:
    twice = InferRequest(inputs=[Tensor("x", np.array([1.0])), Tensor("x", np.array([2.0]))])
    async with _client(echo_server, protocol) as client:
        with pytest.raises(InvalidInput, match="input names must be unique"):
            await client.infer("echo", twice)


async def test_bad_v1_body_is_invalid_input(echo_server: RunningServer) -> None:
    async with _client(echo_server, "v1") as client:
        with pytest.raises(InvalidInput, match="'instances' must be a non-empty list"):
            await client.predict("echo", {"instances": []})


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_unreachable_server_is_named(closed_port: int, protocol: str) -> None:
    address = f"127.0.0.1:{closed_port}"
    async with InferenceClient(f"http://{address}", grpc_target=address, protocol=protocol, timeout_s=10) as client:
        start = time.monotonic()
        with pytest.raises(ServerUnreachable, match=address):
            await client.infer("m", InferRequest(inputs=[Tensor("x", np.array([1.0]))]))
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_server_that_does_not_answer_times_out(silent_port: int, protocol: str) -> None:
    address = f"127.0.0.1:{silent_port}"
    async with InferenceClient(f"http://{address}", grpc_target=address, protocol=protocol, timeout_s=0.5) as client:
        start = time.monotonic()
        with pytest.raises(RequestTimeout, match=address):
            await client.ready("m")
    assert time.monotonic() - start < 5


def test_the_protocol_says_which_address_is_needed() -> None:
    with pytest.raises(ConfigurationError, match="grpc_target"):
        InferenceClient("http://127.0.0.1:1", protocol="grpc-v2")
    with pytest.raises(ConfigurationError, match="needs a url"):
        InferenceClient(grpc_target="127.0.0.1:1")
