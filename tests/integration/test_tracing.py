"""`wharf serve` with tracing on: a client's traceparent is continued over REST and gRPC, and the request's steps
(decode, queue wait, batch with the model's predict, encode) are children of the server span."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.integration.conftest import RunningServer, launch
from tests.otlp_receiver import INTERNAL, SERVER, OtlpReceiver, children, describe
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

pytest_plugins = ["tests.otlp_fixtures"]  # its fixture otlp: one receiver for the module
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
ROWS = [[6.8, 2.8, 4.8, 1.4], [5.1, 3.5, 1.4, 0.2]]
MODEL_SPANS = {"decode", "queue wait", "batch", "encode"}


@pytest.fixture(scope="module")
def server(iris_model: Path, otlp: OtlpReceiver) -> Iterator[RunningServer]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
        "WHARF_REVISION": "iris-predictor-00001",
    }
    server = launch(str(iris_model), "--name", "iris", env=env)
    yield server
    server.stop()


def _trace(otlp: OtlpReceiver, trace_id: str) -> tuple[OtlpReceiver, list]:
    """The spans of `trace_id`, once its server span and the model's spans under it came."""

    def complete(spans: list) -> bool:
        names = {s.name for s in spans if s.trace_id == trace_id}
        return MODEL_SPANS | {"predict"} <= names

    otlp.wait_for(complete, what=f"the spans of trace {trace_id}")
    return otlp.trace(trace_id)


def _check_tree(spans: list, name: str) -> None:
    """One SERVER span `name`, child of the client's span, with decode, queue wait, batch (predict) and encode."""
    (server,) = [s for s in spans if s.kind == SERVER]
    assert server.name == name and server.parent_id == CLIENT_SPAN, describe(spans)
    assert server.service == "wharf-model-server"
    assert server.resource["wharf.revision"] == "iris-predictor-00001"
    assert server.resource["deployment.environment"] == "test"
    under = {s.name: s for s in children(spans, server)}
    assert set(under) == MODEL_SPANS, describe(spans)
    assert all(s.kind == INTERNAL for s in under.values())
    batch = under["batch"]
    assert batch.attributes == {"wharf.batch.size": 2, "wharf.batch.requests": 1}
    assert [s.name for s in children(spans, batch)] == ["predict"]
    assert under["decode"].end_ns <= under["queue wait"].end_ns <= batch.start_ns + 1000
    assert batch.end_ns <= under["encode"].start_ns


def test_rest_request_continues_the_clients_trace(server: RunningServer, otlp: OtlpReceiver) -> None:
    trace_id = TRACE
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]}
    headers = {"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"}
    answer = httpx.post(f"{server.url}/v2/models/iris/infer", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200
    spans = _trace(otlp, trace_id)
    _check_tree(spans, "POST /v2/models/iris/infer")
    (server_span,) = [s for s in spans if s.kind == SERVER]
    assert server_span.attributes == {
        "http.request.method": "POST",
        "url.path": "/v2/models/iris/infer",
        "http.response.status_code": 200,
    }


def test_grpc_request_continues_the_clients_trace(server: RunningServer, otlp: OtlpReceiver) -> None:
    trace_id = TRACE[::-1]
    request = pb.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[2, 4])
    tensor.contents.fp64_contents.extend(v for row in ROWS for v in row)
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        metadata = [("traceparent", f"00-{trace_id}-{CLIENT_SPAN}-01")]
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, metadata=metadata, timeout=30)
    spans = _trace(otlp, trace_id)
    _check_tree(spans, "inference.GRPCInferenceService/ModelInfer")
    (server_span,) = [s for s in spans if s.kind == SERVER]
    assert server_span.attributes["rpc.method"] == "ModelInfer"
    assert server_span.attributes["rpc.grpc.status_code"] == 0


def test_an_unsampled_request_makes_no_span(server: RunningServer, otlp: OtlpReceiver) -> None:
    trace_id = "f" * 32
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROWS[:1]}]}
    headers = {"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-00"}  # the client did not sample it
    assert httpx.post(f"{server.url}/v2/models/iris/infer", json=body, headers=headers, timeout=30).status_code == 200
    marker = "a" * 32  # a sampled request after it: once its spans came, the unsampled one's would have too
    headers = {"traceparent": f"00-{marker}-{CLIENT_SPAN}-01"}
    assert httpx.post(f"{server.url}/v2/models/iris/infer", json=body, headers=headers, timeout=30).status_code == 200
    otlp.wait_for(lambda spans: any(s.trace_id == marker and s.kind == SERVER for s in spans))
    assert otlp.trace(trace_id) == []
