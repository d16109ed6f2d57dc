"""Payload logging by the gateway: each request and response of a revision with a `logger` goes to a real sink as
a CloudEvent (KServe's inference-logger format), and a sink that fails never fails or holds up a request."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import orjson
import pytest

from tests.event_sink import EventSink
from tests.integration.conftest import RunningServer
from tests.integration.test_gateway import RunningGateway
from wharf.gateway import GatewaySettings, Replica, Revision, RouteTable, Service
from wharf.gateway.payloads import GRPC_REQUEST, GRPC_RESPONSE
from wharf.logger import REQUEST_TYPE, RESPONSE_TYPE, LogTarget
from wharf.logger.events import Mode
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.timeout(60)]
HOST = "echo.default.example.com"
REVISION = "echo-predictor-00001"
BODY = orjson.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, 2]}]})


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    running = RunningGateway(GatewaySettings())
    yield running
    running.stop()


@pytest.fixture
def sink() -> Iterator[EventSink]:
    running = EventSink()
    yield running
    running.close()


def _log_to(gateway: RunningGateway, echo: RunningServer, url: str, mode: Mode = "all", headers=()) -> None:  # type: ignore[no-untyped-def]
    target = LogTarget(url, mode, "echo", "default", "predictor", REVISION, f"http://{HOST}", headers)
    replica = Replica("echo-0", echo.url, f"127.0.0.1:{echo.grpc_port}", True)
    revision = Revision(REVISION, (replica,), 10.0, 0, target)
    gateway.update(RouteTable((Service("default", "echo", "echo", ((REVISION, 100),), {}, {REVISION: revision}),)))


def _infer(gateway: RunningGateway, **headers: str) -> httpx.Response:
    sent = {"host": HOST, "content-type": "application/json", **headers}
    url = f"http://127.0.0.1:{gateway.http_port}/v2/models/echo/infer"
    answer = httpx.post(url, content=BODY, headers=sent, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer


def _drain(gateway: RunningGateway) -> dict[str, int]:
    """Wait until every queued event is sent or lost, and return the counts."""
    gateway.run(gateway.gateway.payloads.flush(10))
    return dict(gateway.gateway.payloads.counts)


def test_a_request_and_its_response_reach_the_sink_as_cloudevents(
    gateway: RunningGateway, echo_server: RunningServer, sink: EventSink
) -> None:
    _log_to(gateway, echo_server, sink.url, headers=("x-user",))
    answer = _infer(gateway, **{"x-request-id": "req-42", "x-user": "ann"})
    request, response = sorted(sink.wait_for(2), key=lambda event: event["type"])
    assert (request["type"], response["type"]) == (REQUEST_TYPE, RESPONSE_TYPE)
    assert request["id"] == response["id"] == "req-42"
    assert request.data == BODY and response.data == answer.content  # the payloads exactly as sent
    for event in (request, response):
        assert event["specversion"] == "1.0" and event["source"] == f"http://{HOST}"
        assert event["datacontenttype"] == "application/json"
        assert (event["inferenceservicename"], event["namespace"]) == ("echo", "default")
        assert (event["component"], event["endpoint"]) == ("predictor", REVISION)
        assert orjson.loads(event["metadata"]) == {"x-user": ["ann"]}
    assert response["statuscode"] == "200" and "statuscode" not in request.get_attributes()

    made = _infer(gateway)  # no x-request-id: the gateway makes one, shared by both events, and tells the client
    request, response = sorted(sink.wait_for(4)[2:], key=lambda event: event["type"])
    assert request["id"] == response["id"] == made.headers["x-request-id"] and len(request["id"]) == 32
    assert orjson.loads(request["metadata"]) == {}


@pytest.mark.parametrize(("mode", "logged"), [("request", REQUEST_TYPE), ("response", RESPONSE_TYPE)])
def test_the_mode_says_what_is_logged(
    gateway: RunningGateway, echo_server: RunningServer, sink: EventSink, mode: Mode, logged: str
) -> None:
    _log_to(gateway, echo_server, sink.url, mode)
    for _ in range(3):
        _infer(gateway)
    ready = httpx.get(f"http://127.0.0.1:{gateway.http_port}/v2/models/echo/ready", headers={"host": HOST})
    assert ready.status_code == 200  # a read carries no payload: not logged
    _drain(gateway)
    assert [event["type"] for event in sink.events] == [logged] * 3


def test_grpc_model_infer_is_logged_as_protobuf_with_an_http_status(
    gateway: RunningGateway, echo_server: RunningServer, sink: EventSink
) -> None:
    _log_to(gateway, echo_server, sink.url, headers=("x-user",))
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[2])
    tensor.contents.fp32_contents.extend([1.5, 2.0])
    request = pb.ModelInferRequest(model_name="echo", inputs=[tensor])
    with grpc.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        answer = stub.ModelInfer(request, metadata=[("x-request-id", "g-1"), ("x-user", "bo")], timeout=10)
        streamed = list(stub.ModelStreamInfer(iter([request, request]), metadata=[("x-request-id", "s")], timeout=10))
        assert len(streamed) == 2 and not streamed[0].error_message
        request.inputs[0].shape[:] = [3]  # two values for three elements: the replica refuses it
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    events = sink.wait_for(8)
    assert sorted(event["id"] for event in events if event["id"].startswith("s")) == ["s-1", "s-1", "s-2", "s-2"]
    first = [event for event in events if event["id"] == "g-1"]
    request_event, response_event = sorted(first, key=lambda event: event["type"])
    assert request_event["datacontenttype"] == GRPC_REQUEST
    assert pb.ModelInferRequest.FromString(request_event.data).inputs[0].contents.fp32_contents == [1.5, 2.0]
    assert response_event["datacontenttype"] == GRPC_RESPONSE and response_event["statuscode"] == "200"
    assert pb.ModelInferResponse.FromString(response_event.data) == answer
    assert orjson.loads(request_event["metadata"]) == {"x-user": ["bo"]}
    (failed,) = [
        event for event in events if event["id"] not in ("g-1", "s-1", "s-2") and event["type"] == RESPONSE_TYPE
    ]
    assert failed["statuscode"] == "400" and refused.value.details() in failed.data.decode()


def test_a_failing_slow_or_missing_sink_never_fails_or_holds_up_a_request(
    gateway: RunningGateway, echo_server: RunningServer
) -> None:
    failing, hanging = EventSink(status=500), EventSink(delay_s=30)
    try:
        before = _drain(gateway)
        for url in (failing.url, "http://127.0.0.1:9/"):  # a sink that answers 500, and one nobody listens on
            _log_to(gateway, echo_server, url)
            for _ in range(5):
                _infer(gateway)
        counts = _drain(gateway)
        assert counts["failed"] - before["failed"] == 20 and counts["sent"] == before["sent"]
        assert len(failing.events) == 10
        _log_to(gateway, echo_server, hanging.url)
        started = time.monotonic()
        for _ in range(20):  # more events than the logger has senders, each held by the sink
            _infer(gateway)
        assert time.monotonic() - started < 5
    finally:
        failing.close()
        hanging.close()


def test_an_answer_the_gateway_makes_itself_is_logged_too(gateway: RunningGateway, sink: EventSink) -> None:
    target = LogTarget(sink.url, "all", "echo", "default", "predictor", REVISION, f"http://{HOST}")
    cold = Replica("echo-0", "http://127.0.0.1:9", "127.0.0.1:9", ready=False)
    revision = Revision(REVISION, (cold,), 10.0, 0, target, failing="exited (status 1): OSError: weights missing")
    gateway.update(RouteTable((Service("default", "echo", "echo", ((REVISION, 100),), {}, {REVISION: revision}),)))
    url = f"http://127.0.0.1:{gateway.http_port}/v2/models/echo/infer"
    answer = httpx.post(url, content=BODY, headers={"host": HOST, "content-type": "application/json"}, timeout=10)
    assert answer.status_code == 503
    request, response = sorted(sink.wait_for(2), key=lambda event: event["type"])
    assert response["statuscode"] == "503" and response.data == answer.content


def test_a_binary_extension_body_carries_the_length_of_its_json_part(
    gateway: RunningGateway, echo_server: RunningServer, sink: EventSink
) -> None:
    _log_to(gateway, echo_server, sink.url)
    header = orjson.dumps(
        {
            "inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}],
            "outputs": [{"name": "x", "parameters": {"binary_data": True}}],
        }
    )
    body = header + np.array([1.5, 2.0], dtype=np.float32).tobytes()
    headers = {
        "host": HOST,
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }
    url = f"http://127.0.0.1:{gateway.http_port}/v2/models/echo/infer"
    answer = httpx.post(url, content=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    request, response = sorted(sink.wait_for(2), key=lambda event: event["type"])
    assert request.data == body and request["inferenceheadercontentlength"] == str(len(header))
    answer_json = int(answer.headers["inference-header-content-length"])
    assert response.data == answer.content and response["inferenceheadercontentlength"] == str(answer_json)
