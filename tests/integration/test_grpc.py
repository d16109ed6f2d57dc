"""The model server over gRPC, as a real `wharf serve` process driven by tritonclient, KServe's client and stubs."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as triton
from sklearn.datasets import load_iris
from tritonclient.grpc import service_pb2 as triton_pb
from tritonclient.grpc import service_pb2_grpc as triton_pb_grpc
from tritonclient.utils import InferenceServerException

from tests.integration.conftest import RunningServer, wait_until_in_flight
from tests.unit.protocol.test_grpc_codec import VALUES
from wharf.protocol.grpc import codec
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

TIMEOUT_S = 10
ROWS = load_iris().data[[0, 60, 120]]
# (messages module, stubs module) of each proto a client may have compiled: Wharf's own and Triton's.
PROTOS = {"wharf": (pb, pb_grpc), "triton": (triton_pb, triton_pb_grpc)}


def _address(server: RunningServer) -> str:
    return f"127.0.0.1:{server.grpc_port}"


def _array(datatype: str, shape: tuple[int, ...] = (2, 2)) -> np.ndarray:
    dtype = object if datatype == "BYTES" else codec.tensors.DTYPES[datatype]
    return np.array(VALUES[datatype], dtype=dtype).reshape(shape)


def _collect(answers: queue.Queue) -> Callable[..., None]:
    """A tritonclient callback that puts each (result, error) it is given on `answers`."""
    return lambda result, error: answers.put((result, error))


def _status(error: InferenceServerException) -> str:
    return error.status().removeprefix("StatusCode.")


@pytest.fixture(scope="module")
def echo(echo_server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(_address(echo_server))
    yield client
    client.close()


@pytest.fixture(scope="module")
def iris(iris_server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(_address(iris_server))
    yield client
    client.close()


@pytest.fixture(scope="module")
def channel(echo_server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(_address(echo_server)) as opened:
        yield opened


def _triton_input(name: str, array: np.ndarray, datatype: str) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


# ---- tritonclient: health, metadata, raw tensors ----------------------------------------------------------------
def test_health_metadata_config_and_index(iris: triton.InferenceServerClient) -> None:
    assert iris.is_server_live(client_timeout=TIMEOUT_S) and iris.is_server_ready(client_timeout=TIMEOUT_S)
    assert iris.is_model_ready("iris", client_timeout=TIMEOUT_S)
    server = iris.get_server_metadata(as_json=True, client_timeout=TIMEOUT_S)
    assert server["name"] == "wharf" and "model_repository" in server["extensions"]
    meta = iris.get_model_metadata("iris", as_json=True, client_timeout=TIMEOUT_S)
    assert (meta["name"], meta["platform"]) == ("iris", "sklearn")
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": ["-1", "4"]}]
    config = iris.get_model_config("iris", as_json=True, client_timeout=TIMEOUT_S)["config"]
    assert config["input"] == [{"name": "input-0", "data_type": "TYPE_FP64", "dims": ["-1", "4"]}]
    index = iris.get_model_repository_index(as_json=True, client_timeout=TIMEOUT_S)
    assert index["models"] == [{"name": "iris", "state": "READY"}]


def test_iris_infer_matches_scikit_learn(iris: triton.InferenceServerClient, iris_model: Path) -> None:
    estimator = joblib.load(iris_model)
    rows = _triton_input("input-0", ROWS, "FP64")
    result = iris.infer("iris", [rows], request_id="req-7", client_timeout=TIMEOUT_S)
    assert result.get_response().id == "req-7"
    assert result.as_numpy("predict").tolist() == estimator.predict(ROWS).tolist()
    wanted = [triton.InferRequestedOutput("predict_proba")]
    result = iris.infer("iris", [rows], outputs=wanted, client_timeout=TIMEOUT_S)
    assert [o.name for o in result.get_response().outputs] == ["predict_proba"]
    assert np.allclose(result.as_numpy("predict_proba"), estimator.predict_proba(ROWS))


@pytest.mark.parametrize("datatype", sorted(VALUES))
def test_every_datatype_round_trips_raw(echo: triton.InferenceServerClient, datatype: str) -> None:
    array = _array(datatype)
    result = echo.infer("echo", [_triton_input("x", array, datatype)], client_timeout=TIMEOUT_S)
    out = result.get_output("x")
    assert out.datatype == datatype and list(out.shape) == [2, 2]
    assert result.as_numpy("x").tolist() == array.tolist()


def test_parameters_and_requested_outputs(echo: triton.InferenceServerClient) -> None:
    inputs = [_triton_input("x", _array("INT32"), "INT32"), _triton_input("y", _array("FP64"), "FP64")]
    parameters = {"flag": True, "count": -3, "label": "s", "scale": 0.5}
    result = echo.infer(
        "echo", inputs, outputs=[triton.InferRequestedOutput("y")], parameters=parameters, client_timeout=TIMEOUT_S
    )
    response = result.get_response()
    assert [o.name for o in response.outputs] == ["y"]
    assert codec.decode_parameters(response.parameters) == parameters


def test_large_messages_pass_the_default_grpc_limit(echo: triton.InferenceServerClient) -> None:
    array = np.arange(3 * 2**20, dtype=np.float32)  # 12 MiB, three times gRPC's default limit
    result = echo.infer("echo", [_triton_input("x", array, "FP32")], client_timeout=TIMEOUT_S)
    assert np.array_equal(result.as_numpy("x"), array)


def test_stream_answers_each_request_in_order(echo: triton.InferenceServerClient) -> None:
    answers: queue.Queue = queue.Queue()
    echo.start_stream(callback=_collect(answers))
    try:
        for model, request_id in (("echo", "1"), ("missing", "2"), ("echo", "3")):
            echo.async_stream_infer(model, [_triton_input("x", _array("FP32"), "FP32")], request_id=request_id)
        received = [answers.get(timeout=TIMEOUT_S) for _ in range(3)]
    finally:
        echo.stop_stream()
    assert [r.get_response().id if r else None for r, _ in received] == ["1", None, "3"]
    assert "model 'missing' is not in the repository" in received[1][1].message()


# ---- typed contents through the stubs of each proto -------------------------------------------------------------
@pytest.mark.parametrize("proto", sorted(PROTOS))
@pytest.mark.parametrize("datatype", sorted(set(VALUES) - {"FP16"}))
def test_every_datatype_round_trips_typed(channel: grpc.Channel, proto: str, datatype: str) -> None:
    messages, stubs = PROTOS[proto]
    field = codec._CONTENTS[datatype][0]
    request = messages.ModelInferRequest(model_name="echo", id="typed")
    item = request.inputs.add(name="x", datatype=datatype, shape=[2, 2])
    getattr(item.contents, field).extend(VALUES[datatype])
    item.parameters["unit"].string_param = "cm"
    request.parameters["big"].uint64_param = 2**64 - 1
    response = stubs.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=TIMEOUT_S)
    assert not response.raw_output_contents and response.id == "typed"
    (out,) = response.outputs
    assert (out.name, out.datatype, list(out.shape)) == ("x", datatype, [2, 2])
    assert list(getattr(out.contents, field)) == VALUES[datatype]
    assert codec.decode_parameters(out.parameters) == {"unit": "cm"}
    assert codec.decode_parameters(response.parameters) == {"big": 2**64 - 1}


def test_typed_contents_drive_iris(iris_server: RunningServer, iris_model: Path) -> None:
    request = pb.ModelInferRequest(model_name="iris")
    item = request.inputs.add(name="input-0", datatype="FP32", shape=ROWS.shape)
    item.contents.fp32_contents.extend(ROWS.reshape(-1).tolist())
    with grpc.insecure_channel(_address(iris_server)) as opened:
        response = pb_grpc.GRPCInferenceServiceStub(opened).ModelInfer(request, timeout=TIMEOUT_S)
    (out,) = response.outputs
    expected = joblib.load(iris_model).predict(ROWS.astype(np.float32))
    assert (out.name, out.datatype, list(out.contents.int64_contents)) == ("predict", "INT64", expected.tolist())


# ---- errors -----------------------------------------------------------------------------------------------------
def test_errors_map_to_status_codes_and_the_server_goes_on(iris: triton.InferenceServerClient) -> None:
    good = _triton_input("input-0", ROWS, "FP64")
    with pytest.raises(InferenceServerException) as unknown:
        iris.infer("missing", [good], client_timeout=TIMEOUT_S)
    assert _status(unknown.value) == "NOT_FOUND" and "'missing'" in unknown.value.message()
    with pytest.raises(InferenceServerException) as unknown_ready:
        iris.is_model_ready("missing", client_timeout=TIMEOUT_S)
    assert _status(unknown_ready.value) == "NOT_FOUND"
    with pytest.raises(InferenceServerException) as bad_shape:
        iris.infer("iris", [_triton_input("input-0", ROWS[:, :3], "FP64")], client_timeout=TIMEOUT_S)
    assert _status(bad_shape.value) == "INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException) as statistics:
        iris.get_inference_statistics("iris", client_timeout=TIMEOUT_S)
    assert _status(statistics.value) == "UNIMPLEMENTED" and "/metrics" in statistics.value.message()
    assert iris.infer("iris", [good], client_timeout=TIMEOUT_S).as_numpy("predict").shape == (3,)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda r: r.inputs[0].shape.append(2), "holds 8 elements but fp32_contents has 4"),
        (lambda r: setattr(r.inputs[0], "datatype", "FP16"), "send it in raw_input_contents"),
        (lambda r: r.raw_input_contents.append(b"\x00" * 16), "use one encoding for all inputs"),
    ],
)
def test_malformed_requests_are_invalid_argument(
    channel: grpc.Channel, change: Callable[[pb.ModelInferRequest], None], fragment: str
) -> None:
    request = pb.ModelInferRequest(model_name="echo")
    request.inputs.add(name="x", datatype="FP32", shape=[2, 2]).contents.fp32_contents.extend([1, 2, 3, 4])
    change(request)
    with pytest.raises(grpc.RpcError) as error:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=TIMEOUT_S)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in error.value.details()


def test_metrics_count_grpc_requests(echo_server: RunningServer, echo: triton.InferenceServerClient) -> None:
    echo.infer("echo", [_triton_input("x", _array("FP32"), "FP32")], client_timeout=TIMEOUT_S)
    text = httpx.get(f"{echo_server.url}/metrics", timeout=TIMEOUT_S).text
    assert 'wharf_requests_total{model="echo",protocol="grpc",status="200"}' in text


# ---- repository, server faults, settings, shutdown --------------------------------------------------------------
def test_repository_load_and_unload_from_both_clients(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Broken", "--name", "broken")
    client = triton.InferenceServerClient(_address(server))
    try:
        with pytest.raises(InferenceServerException) as fault:
            client.infer("broken", [_triton_input("x", _array("FP32"), "FP32")], client_timeout=TIMEOUT_S)
        assert _status(fault.value) == "INTERNAL" and "RuntimeError: boom" in fault.value.message()
        client.unload_model("broken", client_timeout=TIMEOUT_S)
        assert not client.is_model_ready("broken", client_timeout=TIMEOUT_S)
        assert client.get_model_repository_index(as_json=True, client_timeout=TIMEOUT_S)["models"] == [
            {"name": "broken", "state": "UNAVAILABLE", "reason": "unloaded"}
        ]
        with pytest.raises(InferenceServerException) as not_ready:
            client.infer("broken", [_triton_input("x", _array("FP32"), "FP32")], client_timeout=TIMEOUT_S)
        assert _status(not_ready.value) == "UNAVAILABLE"
        with grpc.insecure_channel(_address(server)) as opened:  # KServe's layout: the model name in field 1
            answer = pb_grpc.GRPCInferenceServiceStub(opened).RepositoryModelLoad(
                pb.RepositoryModelLoadRequest(model_name="broken"), timeout=TIMEOUT_S
            )
        assert (answer.model_name, answer.isLoaded) == ("broken", True)
        assert client.is_model_ready("broken", client_timeout=TIMEOUT_S)
        with pytest.raises(InferenceServerException) as override:
            client.load_model("broken", config="{}", client_timeout=TIMEOUT_S)
        assert _status(override.value) == "INVALID_ARGUMENT"
    finally:
        client.close()


def test_message_size_limit_is_a_setting(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Echo", "--name", "echo", env={"WHARF_GRPC_MAX_MESSAGE_BYTES": str(2**20)})
    client = triton.InferenceServerClient(_address(server))
    try:
        with pytest.raises(InferenceServerException) as too_large:
            client.infer("echo", [_triton_input("x", np.zeros(2**19, np.float32), "FP32")], client_timeout=TIMEOUT_S)
        assert _status(too_large.value) == "RESOURCE_EXHAUSTED"
    finally:
        client.close()


def test_sigterm_drains_requests_in_flight(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Slow", "--name", "slow")
    client = triton.InferenceServerClient(_address(server))
    answers: queue.Queue = queue.Queue()
    try:
        seconds = _triton_input("seconds", np.array([1.0]), "FP64")
        client.async_infer("slow", [seconds], _collect(answers), client_timeout=TIMEOUT_S)
        wait_until_in_flight(server, "slow")
        server.proc.send_signal(signal.SIGTERM)
        result, error = answers.get(timeout=TIMEOUT_S)
        assert error is None and result.as_numpy("slept").tolist() == [1.0]
        assert server.proc.wait(TIMEOUT_S) == 0
    finally:
        client.close()


# ---- KServe's client ------------------------------------------------------------------------------------------
# KServe's and Triton's generated modules cannot share a process (both register `inference.*` in protobuf's
# default pool), so KServe's client runs in an interpreter of its own and reports what it saw as JSON.
KSERVE_CLIENT = """
import asyncio, json, sys
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

async def main(url):
    async with InferenceGRPCClient(url, timeout=10, retries=0) as client:
        seen = {"ready": await client.is_server_ready(), "live": await client.is_server_live(),
                "model_ready": await client.is_model_ready("echo")}
        raw = InferInput("x", [2, 2], "FP32")
        raw.set_data_from_numpy(np.array([[1, 2], [3, 4]], dtype=np.float32))
        typed = InferInput("s", [2], "BYTES", ["a", "b"])
        for name, tensor in (("raw", raw), ("typed", typed)):
            answer = await client.infer(InferRequest("echo", [tensor], request_id=name, parameters={"k": 1}))
            out = answer.outputs[0]
            data = [v.decode() if isinstance(v, bytes) else v for v in out.as_numpy().reshape(-1).tolist()]
            seen[name] = {"id": answer.id, "datatype": out.datatype, "shape": list(out.shape), "data": data}
    print(json.dumps(seen))

asyncio.run(main(sys.argv[1]))
"""


def test_kserve_grpc_client(echo_server: RunningServer) -> None:
    run = subprocess.run(
        [sys.executable, "-c", KSERVE_CLIENT, _address(echo_server)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr  # kserve comes with the test extra: missing, it fails
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert (seen["ready"], seen["live"], seen["model_ready"]) == (True, True, True)
    assert seen["raw"] == {"id": "raw", "datatype": "FP32", "shape": [2, 2], "data": [1.0, 2.0, 3.0, 4.0]}
    assert seen["typed"] == {"id": "typed", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}
