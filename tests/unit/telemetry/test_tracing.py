"""tracing: configured by OTEL_* only, off by default, spans exported over OTLP to a real receiver."""

from __future__ import annotations

import sys
import time

import pytest

from tests.otlp_receiver import INTERNAL, SERVER, OtlpReceiver
from wharf.errors import ConfigurationError
from wharf.telemetry import tracing

pytest_plugins = ["tests.otlp_fixtures"]  # its fixtures: receiver, traced

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


def test_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing.ENDPOINTS:
        monkeypatch.delenv(name, raising=False)
    assert not tracing.configure("wharf-test")
    assert not tracing.enabled
    assert tracing.trace_headers() == {}
    with tracing.span("nothing") as made:
        assert made is None


def test_importing_wharf_does_not_import_the_sdk() -> None:
    import subprocess

    code = "import wharf.gateway.proxy, wharf.server.rest, sys; print('opentelemetry.sdk' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ConfigurationError, match="http/json"):
        tracing.configure("wharf-test")
    assert not tracing.enabled


def test_server_span_continues_the_incoming_trace(traced: OtlpReceiver) -> None:
    headers = [(b"host", b"x"), (b"traceparent", TRACEPARENT.encode())]
    with tracing.server_span("POST /v2/models/m/infer", headers, {"http.request.method": "POST"}):
        with tracing.span("decode"):
            outgoing = tracing.outgoing_headers([(b"traceparent", TRACEPARENT.encode()), (b"a", b"1")])
        tracing.event("resent", {"wharf.replica": "r1"})
    spans = traced.wait_for(lambda spans: len(spans) == 2)
    server = next(s for s in spans if s.kind == SERVER)
    decode = next(s for s in spans if s.name == "decode")
    assert (server.trace_id, server.parent_id) == (TRACE, PARENT)
    assert server.attributes == {"http.request.method": "POST"} and server.events == ["resent"]
    assert decode.parent_id == server.span_id and decode.kind == INTERNAL
    assert server.service == "wharf-test" and server.resource["wharf.component"] == "unit"
    # The call out carries the decode span's context, the old traceparent gone, other headers kept.
    assert outgoing[0] == (b"a", b"1")
    assert dict(outgoing)[b"traceparent"] == f"00-{TRACE}-{decode.span_id}-01".encode()


def test_grpc_metadata_and_recorded_spans(traced: OtlpReceiver) -> None:
    with tracing.server_span("inference.GRPCInferenceService/ModelInfer", (("traceparent", TRACEPARENT),)):
        parent = tracing.current()
        metadata = tracing.outgoing_metadata((("x-wharf-service", "default/m"), ("traceparent", "junk")))
    start = time.time_ns()
    tracing.recorded("queue wait", parent, start, start + 1000, {"wharf.batch.size": 3})
    spans = traced.wait_for(lambda spans: len(spans) == 2)
    server = next(s for s in spans if s.kind == SERVER)
    wait = next(s for s in spans if s.name == "queue wait")
    assert wait.parent_id == server.span_id and wait.end_ns - wait.start_ns == 1000
    assert wait.attributes == {"wharf.batch.size": 3}
    assert metadata == (("x-wharf-service", "default/m"), ("traceparent", f"00-{TRACE}-{server.span_id}-01"))


def test_env_names_the_service_and_samples(receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.endpoint}/v1/traces")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "mine")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "wharf.component=theirs,deployment.environment=test")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    try:
        assert tracing.configure("wharf-test", {"wharf.component": "ours"})
        with tracing.server_span("dropped: a new trace, sampled at ratio 0", ()):
            pass
        with tracing.server_span("kept: its parent was sampled", [("traceparent", TRACEPARENT)]):
            pass
    finally:
        tracing.shutdown()  # flushes
    (kept,) = receiver.spans
    assert kept.name == "kept: its parent was sampled" and kept.service == "mine"
    assert kept.resource["wharf.component"] == "theirs" and kept.resource["deployment.environment"] == "test"
