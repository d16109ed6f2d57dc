"""The gateway in front of a real `wharf serve` replica, as an attacker or a careless client would use it: the model
repository API (REST and gRPC) is refused and the model keeps answering; large bodies are streamed to the replica
as they arrive, within the body limit and timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from wharf.gateway import GatewaySettings, Replica, Revision, RouteTable, Service
from wharf.gateway.proxy import REPOSITORY_REFUSED

from .conftest import RunningServer
from .test_gateway import RunningGateway

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

ECHO = "echo.default.example.com"
SINK = "sink.default.example.com"


def service(name: str, url: str, grpc_target: str, model: str) -> Service:
    revision = Revision(f"{name}-1", (Replica(f"{name}-r", url, grpc_target, ready=True),), timeout_s=20.0)
    return Service("default", name, model, ((revision.name, 100),), {}, {revision.name: revision})


def echo_service(echo: RunningServer) -> Service:
    return service("echo", echo.url, f"127.0.0.1:{echo.grpc_port}", "echo")


@pytest.fixture
def gateway(echo_server: RunningServer) -> Iterator[RunningGateway]:
    running = RunningGateway(GatewaySettings())
    running.update(RouteTable((echo_service(echo_server),)))
    yield running
    running.stop()


def tensor_request(values: np.ndarray) -> bytes:
    tensor = {"name": "x", "shape": [len(values)], "datatype": "FP32", "data": values.tolist()}
    return orjson.dumps({"inputs": [tensor]})


def echoed(answer: httpx.Response) -> list[float]:
    assert answer.status_code == 200, answer.text
    return answer.json()["outputs"][0]["data"]


# --- the model repository API ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "host"),
    [
        ("POST", "/v2/repository/models/echo/unload", ECHO),
        ("POST", "/serving/default/echo/v2/repository/models/echo/unload", "127.0.0.1"),
        ("POST", "/v2/repository/models/echo/load", ECHO),
        ("POST", "/v2/repository/index", ECHO),
        ("GET", "/v2/repository/index", ECHO),
        ("POST", "/v2/%72epository/models/echo/unload", ECHO),
        ("POST", "/v2%2Frepository/models/echo/unload", ECHO),
        ("POST", "//v2//repository/models/echo/unload", ECHO),
        ("POST", "/v2/./repository/models/echo/unload", ECHO),
    ],
)
def test_the_repository_api_is_refused_and_the_model_keeps_answering(
    gateway: RunningGateway, echo_server: RunningServer, method: str, path: str, host: str
) -> None:
    base = f"http://127.0.0.1:{gateway.http_port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        answer = client.request(method, httpx.URL(f"{base}{path}"), headers={"host": host})
        assert (answer.status_code, answer.json()) == (403, {"error": REPOSITORY_REFUSED})
        assert echoed(client.post("/v2/models/echo/infer", content=tensor_request(np.ones(2)), headers={"host": ECHO}))
    assert httpx.get(f"{echo_server.url}/v2/models/echo/ready", timeout=5).status_code == 200


def test_grpc_repository_calls_are_refused_and_the_model_keeps_answering(gateway: RunningGateway) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{gateway.grpc_port}")
    try:
        for call in (
            lambda: client.unload_model("echo"),
            lambda: client.load_model("echo"),
            lambda: client.get_model_repository_index(),
            lambda: client.unload_model("echo", headers={"x-wharf-service": "default/echo"}),
        ):
            with pytest.raises(InferenceServerException) as refused:
                call()
            assert refused.value.status() == "StatusCode.PERMISSION_DENIED"
            assert REPOSITORY_REFUSED in refused.value.message()
        tensor = triton.InferInput("x", [2], "FP32")
        tensor.set_data_from_numpy(np.ones(2, dtype=np.float32))
        assert client.infer("echo", [tensor]).as_numpy("x").tolist() == [1.0, 1.0]
    finally:
        client.close()


# --- streamed bodies ------------------------------------------------------------------------------------------
def test_large_bodies_come_back_whole_with_a_length_or_chunked(gateway: RunningGateway) -> None:
    values = np.arange(400_000, dtype=np.float32)  # about 3.5 MB of JSON: above the 1 MiB streaming threshold
    body = tensor_request(values)
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=20) as client:
        with_length = client.post("/v2/models/echo/infer", content=body, headers={"host": ECHO})
        parts = [body[i : i + 100_000] for i in range(0, len(body), 100_000)]
        chunked = client.post("/v2/models/echo/infer", content=iter(parts), headers={"host": ECHO})
    assert echoed(with_length) == values.tolist()
    assert echoed(chunked) == values.tolist()
    assert gateway.stats()["echo-1"].errors == 0


class ByteSink:
    """A replica's listening socket that reads one request whole, counting its bytes as they come, then answers 200."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(20)
        connection, _ = self.listener.accept()
        with connection:
            connection.settimeout(20)
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:"))[15:])
            self.received = len(body)
            while self.received < length:
                chunk = connection.recv(65536)
                assert chunk
                self.received += len(chunk)
            connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}")

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def test_a_large_body_reaches_the_replica_before_the_client_has_sent_it_all(gateway: RunningGateway) -> None:
    sink = ByteSink()
    try:
        gateway.update(RouteTable((service("sink", f"http://127.0.0.1:{sink.port}", "127.0.0.1:1", "sink"),)))
        size = 4 * 2**20
        with socket.create_connection(("127.0.0.1", gateway.http_port), timeout=20) as client:
            client.sendall(b"POST /v2/models/sink/infer HTTP/1.1\r\nhost: %s\r\n" % SINK.encode())
            client.sendall(b"content-length: %d\r\n\r\n" % size + b"x" * (size // 2))
            deadline = time.monotonic() + 10
            while sink.received < 2**20:  # the first half is forwarded while the second has not been sent
                assert time.monotonic() < deadline, f"the replica got {sink.received} bytes"
                time.sleep(0.02)
            client.sendall(b"x" * (size - size // 2))
            assert client.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert sink.received == size
    finally:
        sink.close()


def test_a_streamed_body_over_the_limit_is_answered_413(echo_server: RunningServer) -> None:
    running = RunningGateway(GatewaySettings(max_request_bytes=2 * 2**20, stream_request_bytes=64 * 2**10))
    try:
        running.update(RouteTable((echo_service(echo_server),)))
        with httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}", timeout=20) as client:
            parts = iter([b"x" * 2**20] * 3)  # chunked: no length to refuse it by at once
            answer = client.post("/v2/models/echo/infer", content=parts, headers={"host": ECHO})
            assert answer.status_code == 413
            assert answer.json() == {"error": f"request body exceeds the limit of {2 * 2**20} bytes"}
            declared = client.post("/v2/models/echo/infer", content=b"x" * (3 * 2**20), headers={"host": ECHO})
            assert declared.status_code == 413
            ok = client.post("/v2/models/echo/infer", content=tensor_request(np.ones(3)), headers={"host": ECHO})
            assert echoed(ok) == [1.0, 1.0, 1.0]
        assert running.stats()["echo-1"].errors == 0  # the client's fault, not the revision's
    finally:
        running.stop()


def test_a_streamed_body_that_stalls_is_answered_within_the_body_timeout(echo_server: RunningServer) -> None:
    running = RunningGateway(GatewaySettings(body_timeout_s=1.0, stream_request_bytes=64 * 2**10))
    try:
        running.update(RouteTable((echo_service(echo_server),)))
        with socket.create_connection(("127.0.0.1", running.http_port), timeout=10) as client:
            client.sendall(b"POST /v2/models/echo/infer HTTP/1.1\r\nhost: %s\r\n" % ECHO.encode())
            client.sendall(b"content-length: %d\r\n\r\n" % (4 * 2**20) + b"x" * 2**20)
            started = time.monotonic()
            reply = b""
            while b"}" not in reply and (chunk := client.recv(65536)):
                reply += chunk
        assert time.monotonic() - started < 3
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        assert orjson.loads(body) == {"error": "request body not received within 1.0 s"}
        assert running.stats()["echo-1"].errors == 0
    finally:
        running.stop()
