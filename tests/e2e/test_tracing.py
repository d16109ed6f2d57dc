"""Traces on `wharf up` with OTEL_EXPORTER_OTLP_ENDPOINT set: one trace per request across the gateway, a
transformer and its predictor (REST), a gRPC request through the gateway to a predictor, and a request that scaled
a service from zero waiting in the activator; every process exports to one real OTLP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from tests.e2e.conftest import Daemon, manifest, ready, start_daemon
from tests.e2e.test_transformers import scaled
from tests.otlp_receiver import CLIENT, SERVER, OtlpReceiver, ReceivedSpan, children, describe
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

pytest_plugins = ["tests.otlp_fixtures"]  # its fixture otlp: one receiver for the module
CLIENT_SPAN = "00f067aa0ba902b7"
FAST_WINDOW = {"autoscaling.knative.dev/window": "6s"}  # Knative's shortest stable window: idle to zero soon
GATEWAY, SERVER_PROCESS = "wharf-gateway", "wharf-model-server"


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver) -> Iterator[Daemon]:
    """A daemon exporting spans to `otlp` every 200 ms, serving `scaled` (a transformer in front of a V2 predictor)
    and `who` (a predictor that goes to zero replicas when idle)."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    daemon = start_daemon(tmp_path_factory.mktemp("tracing") / "home", env=env)
    try:
        idle = manifest("who", "a", predictor={"minReplicas": 0}, annotations=FAST_WINDOW)
        daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=10) + "---\n" + idle)
        daemon.wait("scaled", ready)
        daemon.wait("who", ready)
        yield daemon
    finally:
        daemon.stop()


def _traceparent(trace_id: str) -> str:
    return f"00-{trace_id}-{CLIENT_SPAN}-01"


def _one(spans: list[ReceivedSpan], parent: ReceivedSpan | None = None, **where: object) -> ReceivedSpan:
    """The one span (a child of `parent`, if given) whose fields or attributes match `where`."""

    def matches(span: ReceivedSpan) -> bool:
        if parent is not None and span.parent_id != parent.span_id:
            return False
        fields = {"name": span.name, "kind": span.kind, "service": span.service, **span.attributes, **span.resource}
        return all(fields.get(key.replace("_", ".")) == value for key, value in where.items())

    found = [span for span in spans if matches(span)]
    assert len(found) == 1, f"{len(found)} spans match {where}:\n{describe(spans)}"
    return found[0]


def _spans(otlp: OtlpReceiver, trace_id: str, done: object) -> list[ReceivedSpan]:
    """The spans of `trace_id` once `done(spans)` holds for them."""
    otlp.wait_for(lambda spans: done([s for s in spans if s.trace_id == trace_id]), what=f"trace {trace_id}")
    return otlp.trace(trace_id)


def _model_spans(spans: list[ReceivedSpan], server: ReceivedSpan) -> None:
    """A predictor's server span holds decode, queue wait, batch (with the model's predict) and encode."""
    under = {span.name: span for span in children(spans, server)}
    assert set(under) == {"decode", "queue wait", "batch", "encode"}, describe(spans)
    assert [span.name for span in children(spans, under["batch"])] == ["predict"]


def test_a_request_through_a_transformer_is_one_trace(traced: Daemon, otlp: OtlpReceiver) -> None:
    trace_id = "1" * 32
    body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}
    headers = {"host": "scaled.default.example.com", "traceparent": _traceparent(trace_id)}
    answer = httpx.post(f"{traced.gateway_url}/v2/models/scaled/infer", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text

    def complete(spans: list[ReceivedSpan]) -> bool:
        return sum(s.kind == SERVER for s in spans) == 4 and sum(s.name == "batch" for s in spans) >= 3

    spans = _spans(otlp, trace_id, complete)
    # client -> gateway (the service) -> transformer -> its predict step -> gateway (the predictor's host) -> predictor
    front = _one(spans, service=GATEWAY, kind=SERVER, wharf_service="default/scaled")
    assert front.parent_id == CLIENT_SPAN and front.name == "POST /v2/models/scaled/infer"
    assert front.attributes["wharf.revision"] == "scaled-transformer-00001"
    assert front.attributes["http.response.status_code"] == 200
    transformer = _one(spans, front, kind=SERVER, service=SERVER_PROCESS)
    assert transformer.resource["wharf.component"] == "transformer"
    assert transformer.resource["wharf.revision"] == "scaled-transformer-00001"
    assert transformer.resource["service.instance.id"]  # the replica
    predict = _one(spans, transformer, name="predict")
    behind = _one(spans, predict, service=GATEWAY, kind=SERVER)
    assert behind.attributes["wharf.service"] == "default/scaled-predictor"
    predictor = _one(spans, behind, kind=SERVER, service=SERVER_PROCESS)
    assert predictor.resource["wharf.component"] == "predictor"
    assert predictor.resource["wharf.service"] == "scaled" and predictor.resource["service.namespace"] == "default"
    _model_spans(spans, predictor)
    # The transformer's own steps: preprocess and postprocess in its worker thread, each under a batch.
    steps = {span.name for batch in spans if batch.name == "batch" for span in children(spans, batch)}
    assert {"preprocess", "postprocess", "predict"} <= steps


def test_a_grpc_request_crosses_the_gateway_to_the_predictor(traced: Daemon, otlp: OtlpReceiver) -> None:
    trace_id = "2" * 32
    request = pb.ModelInferRequest(model_name="scaled")
    request.inputs.add(name="x", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
    metadata = [("x-wharf-service", "default/scaled-predictor"), ("traceparent", _traceparent(trace_id))]
    with grpc.insecure_channel(f"127.0.0.1:{traced.grpc_port}") as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, metadata=metadata, timeout=30)
    assert list(answer.outputs[0].contents.fp64_contents) == [11.0]

    spans = _spans(otlp, trace_id, lambda spans: sum(s.kind == SERVER for s in spans) == 2 and len(spans) >= 7)
    name = "inference.GRPCInferenceService/ModelInfer"
    gateway = _one(spans, service=GATEWAY, kind=SERVER, name=name)
    assert gateway.parent_id == CLIENT_SPAN
    assert gateway.attributes["wharf.service"] == "default/scaled-predictor"
    assert gateway.attributes["rpc.grpc.status_code"] == 0
    predictor = _one(spans, gateway, service=SERVER_PROCESS, kind=SERVER, name=name)
    _model_spans(spans, predictor)


def test_a_request_that_scales_from_zero_waits_in_an_activator_span(traced: Daemon, otlp: OtlpReceiver) -> None:
    traced.wait("who", lambda s: s["status"]["replicas"] == 0, timeout=60)  # idle since it was applied
    trace_id = "3" * 32
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    headers = {"host": "who.default.example.com", "traceparent": _traceparent(trace_id)}
    answer = httpx.post(f"{traced.gateway_url}/v2/models/who/infer", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text

    spans = _spans(otlp, trace_id, lambda spans: sum(s.kind == SERVER for s in spans) == 2)
    gateway = _one(spans, service=GATEWAY, kind=SERVER)
    wait = _one(spans, gateway, name="activator wait")
    assert wait.attributes == {"wharf.revision": "who-predictor-00001", "wharf.cold_start": True}
    replica = _one(spans, gateway, service=SERVER_PROCESS, kind=SERVER)
    assert wait.end_ns <= replica.start_ns  # the request went on once a replica was ready
    assert all(span.kind != CLIENT for span in spans)  # no shadow here
