"""A model server under hostile requests: impossible shapes, bodies built to multiply memory, large bodies beside
health probes, and the repository API turned off; each as a real `wharf serve` process (issue 24)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import orjson
import pytest

from tests.integration.conftest import RunningServer
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

TIMEOUT_S = 30
BAD_SHAPES = [[0, 2**63 - 1], [0, 2**40, 2**40], [3, 2**62, 0], [1] * 65, [0] * 65, [2**62, 2**62], [2, -1]]
DEEP = 1000


def _tensor(shape: list[int], datatype: str = "FP32", **fields: object) -> dict[str, object]:
    return {"name": "x", "shape": shape, "datatype": datatype, **fields}


def _json(*tensors: dict[str, object]) -> bytes:
    return orjson.dumps({"inputs": list(tensors)})


def _nested(value: str, depth: int) -> str:
    return "[" * depth + value + "]" * depth


@pytest.fixture(scope="module")
def grpc_stub(echo_server: RunningServer) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{echo_server.grpc_port}") as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


# ---- shapes: 400 / INVALID_ARGUMENT, never 500 / INTERNAL -------------------------------------------------------
@pytest.mark.parametrize("shape", BAD_SHAPES)
def test_impossible_shapes_are_400_over_rest(echo_server: RunningServer, shape: list[int]) -> None:
    url = f"{echo_server.url}/v2/models/echo/infer"
    header = _json(_tensor(shape, parameters={"binary_data_size": 0}))
    answers = [
        httpx.post(url, content=_json(_tensor(shape, data=[])), timeout=TIMEOUT_S),
        httpx.post(url, content=_json(_tensor(shape, "BYTES", data=[])), timeout=TIMEOUT_S),
        httpx.post(url, content=header, headers={"inference-header-content-length": str(len(header))}, timeout=30),
    ]
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert "tensor 'x'" in answer.json()["error"]
    assert httpx.get(f"{echo_server.url}/v2/health/ready", timeout=TIMEOUT_S).status_code == 200


@pytest.mark.parametrize("shape", [s for s in BAD_SHAPES if min(s) >= 0])  # a gRPC shape is int64: no 2**64
@pytest.mark.parametrize("raw", [False, True])
def test_impossible_shapes_are_invalid_argument_over_grpc(
    grpc_stub: pb_grpc.GRPCInferenceServiceStub, shape: list[int], raw: bool
) -> None:
    request = pb.ModelInferRequest(model_name="echo")
    request.inputs.add(name="x", datatype="FP32", shape=shape)
    if raw:
        request.raw_input_contents.append(b"")
    with pytest.raises(grpc.RpcError) as error:
        grpc_stub.ModelInfer(request, timeout=TIMEOUT_S)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert grpc_stub.ServerReady(pb.ServerReadyRequest(), timeout=TIMEOUT_S).ready


def test_negative_dimensions_are_invalid_argument_over_grpc(grpc_stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    request = pb.ModelInferRequest(model_name="echo")
    request.inputs.add(name="x", datatype="FP32", shape=[-1, 2]).contents.fp32_contents.extend([1, 2])
    with pytest.raises(grpc.RpcError) as error:
        grpc_stub.ModelInfer(request, timeout=TIMEOUT_S)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "non-negative" in error.value.details()


def test_bytes_that_are_not_protobuf_are_invalid_argument(echo_server: RunningServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{echo_server.grpc_port}") as channel:
        for method in ("ModelInfer", "RepositoryModelLoad"):
            call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}")  # bytes in, bytes out
            with pytest.raises(grpc.RpcError) as error:
                call(b"\xff\xff\xff", timeout=TIMEOUT_S)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a valid" in error.value.details()
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        answers = [pb.ModelStreamInferResponse.FromString(a) for a in stream(iter([b"\xff\xff"]), timeout=TIMEOUT_S)]
        assert [a.error_message for a in answers] == ["the request is not a valid ModelInferRequest message"]


def _v2_body(datatype: str, data: str) -> str:
    return '{"inputs":[{"name":"x","shape":[1],"datatype":"%s","data":%s}]}' % (datatype, data)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v2/models/echo/infer", _v2_body("BYTES", _nested('"a"', DEEP))),
        ("/v2/models/echo/infer", _v2_body("INT64", _nested("1", DEEP))),
        ("/v1/models/echo:predict", '{"instances":%s}' % _nested('"a"', DEEP)),
        ("/v1/models/echo:predict", '{"instances":%s}' % _nested('{"b64":"YQ=="}', DEEP)),
        ("/v1/models/echo:predict", '{"instances":%s}' % _nested("1", DEEP)),
    ],
)
def test_data_nested_a_thousand_deep_is_400(echo_server: RunningServer, path: str, body: str) -> None:
    answer = httpx.post(echo_server.url + path, content=body.encode(), timeout=TIMEOUT_S)
    assert answer.status_code == 400, answer.text
    assert httpx.get(f"{echo_server.url}/v2/health/ready", timeout=TIMEOUT_S).status_code == 200


# ---- memory: bounded by the body, released with the request -----------------------------------------------------
def _memory_mb(server: RunningServer, field: str) -> int:
    """VmRSS (now) or VmHWM (the peak so far) of the server process, in MiB."""
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no {field} for the server")


def test_bodies_built_to_multiply_memory_are_refused_without_it(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Echo", "--name", "echo")
    url = f"{server.url}/v2/models/echo/infer"
    before = _memory_mb(server, "VmHWM")
    strings = 15 * 2**20  # 60 MiB of one-letter strings: 15 Mi Python strings once parsed (1.4 GB)
    body = b'{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":[' + b",".join([b'"a"'] * strings) + b"]}]}"
    answer = httpx.post(url, content=body, timeout=120)
    assert answer.status_code == 413 and "binary data" in answer.json()["error"]
    del body
    # one long string among short ones: numpy would widen all 2,000 to its 100,000 characters (800 MB)
    widened = ["x" * 100_000] + ["a"] * 1_999
    answer = httpx.post(url, content=_json(_tensor([2_000], data=widened)), timeout=TIMEOUT_S)
    assert answer.status_code == 400 and "FP32 data must be numbers" in answer.json()["error"]
    answer = httpx.post(f"{server.url}/v1/models/echo:predict", json={"instances": widened}, timeout=TIMEOUT_S)
    assert answer.status_code == 200
    grown = _memory_mb(server, "VmHWM") - before
    assert grown < 400, f"the server's peak memory grew by {grown} MiB"
    assert httpx.get(f"{server.url}/v2/health/ready", timeout=TIMEOUT_S).status_code == 200


def test_health_probes_answer_while_large_bodies_decode(serve) -> None:  # type: ignore[no-untyped-def]
    # V1 binary values: ~0.5 s of decoding each (0.1 s of it parsing, which holds the GIL), 6 bodies at once
    server = serve("wharf_test_models:Headers", "--name", "headers")
    body = b'{"instances":[' + b",".join([b'{"b64":"YWJjZA=="}'] * 250_000) + b"]}"
    statuses: list[int] = []

    def post() -> None:
        statuses.append(httpx.post(f"{server.url}/v1/models/headers:predict", content=body, timeout=120).status_code)

    posters = [threading.Thread(target=post) for _ in range(6)]
    waits: list[float] = []
    with httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as probe:
        probe.get("/v2/health/ready")  # the probe's connection is open before the bodies come
        for poster in posters:
            poster.start()
        while any(p.is_alive() for p in posters):
            started = time.perf_counter()
            assert probe.get("/v2/health/ready").status_code == 200
            waits.append(time.perf_counter() - started)
            time.sleep(0.02)
    for poster in posters:
        poster.join(TIMEOUT_S)
    assert statuses == [200] * 6
    assert len(waits) > 5 and max(waits) < 0.5, f"probes waited up to {max(waits):.2f} s"


# ---- the repository API and readiness ---------------------------------------------------------------------------
def test_the_repository_api_can_be_turned_off(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Echo", "--name", "echo", env={"WHARF_REPOSITORY_API": "off"})
    with httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as client:
        for path in ("index", "models/echo/unload", "models/echo/load"):
            answer = client.post(f"/v2/repository/{path}")
            assert answer.status_code == 403 and "WHARF_REPOSITORY_API=on" in answer.json()["error"]
        assert client.get("/v2/health/ready").status_code == 200
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        calls = [
            lambda: stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=TIMEOUT_S),
            lambda: stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="echo"), timeout=TIMEOUT_S),
            lambda: stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="echo"), timeout=TIMEOUT_S),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert stub.ModelReady(pb.ModelReadyRequest(name="echo"), timeout=TIMEOUT_S).ready


def test_a_server_with_a_model_unloaded_is_not_ready(serve, iris_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        shutil.copy(iris_model, tmp_path / name / "model.joblib")
    server = serve(str(tmp_path))
    with (
        httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as client,
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel,
    ):
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert client.get("/v2/health/ready").status_code == 200
        assert client.post("/v2/repository/models/first/unload").status_code == 200
        assert client.get("/v2/health/ready").status_code == 503
        assert not stub.ServerReady(pb.ServerReadyRequest(), timeout=TIMEOUT_S).ready
        assert client.get("/v2/health/live").status_code == 200
        assert client.post("/v2/repository/models/first/load").status_code == 200
        assert client.get("/v2/health/ready").status_code == 200
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=TIMEOUT_S).ready
