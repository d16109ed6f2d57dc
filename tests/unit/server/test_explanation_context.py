"""An explanation runs in an explanation thread within the request's context: the calls it makes carry the
request's trace headers, and while tracing is on the current span's context."""

from __future__ import annotations

import numpy as np
import pytest

from tests.otlp_receiver import OtlpReceiver
from wharf.model import context
from wharf.model.base import Model
from wharf.model.repository import ModelRepository
from wharf.protocol.v2 import InferRequest, Tensor
from wharf.server.dataplane import DataPlane
from wharf.server.metrics import ServerMetrics
from wharf.server.settings import ServerSettings
from wharf.telemetry import tracing

pytest_plugins = ["tests.otlp_fixtures"]
pytestmark = pytest.mark.anyio

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Headers(Model):
    """Explains with the headers its calls of a predictor would carry."""

    strict_inputs = False

    def predict(self, payload: InferRequest) -> np.ndarray:
        return payload.inputs[0].data

    def explain(self, payload: InferRequest) -> dict[str, str]:
        return context.propagated_headers()


async def explained(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    repository = ModelRepository()
    repository.add(Headers("m"))
    await repository.load_all()
    dataplane = DataPlane(repository, ServerSettings(), ServerMetrics())
    try:
        context.serving(headers)
        request = InferRequest(inputs=[Tensor("x", np.array([1.0]))])
        if tracing.enabled:
            with tracing.server_span("POST /v1/models/m:explain", headers) as span:
                return {**await dataplane.explain(dataplane.model("m"), request), "span": span}
        return await dataplane.explain(dataplane.model("m"), request)
    finally:
        dataplane.close()


async def test_an_explanation_passes_the_requests_trace_headers_on() -> None:
    found = await explained([(b"traceparent", TRACEPARENT.encode()), (b"x-request-id", b"r1"), (b"other", b"x")])
    assert found == {"traceparent": TRACEPARENT, "x-request-id": "r1"}


async def test_with_tracing_on_it_passes_the_server_spans_context(traced: OtlpReceiver) -> None:
    found = await explained([(b"traceparent", TRACEPARENT.encode())])
    span_id = format(found.pop("span").get_span_context().span_id, "016x")
    assert found == {"traceparent": f"00-0af7651916cd43dd8448eb211c80319c-{span_id}-01"}
