"""The monitor's ingestion with tracing on: each event posted is a span continuing the trace the payload logger's
event carries."""

from __future__ import annotations

import pytest

from tests.otlp_receiver import SERVER, OtlpReceiver
from tests.unit.monitor.conftest import OpenStore
from tests.unit.monitor.test_ingest import REQUEST, TARGET, call
from wharf.logger.events import REQUEST_TYPE, PayloadEvent
from wharf.monitor.ingest import Ingest
from wharf.monitor.settings import MonitorSettings

pytest_plugins = ["tests.otlp_fixtures"]
pytestmark = pytest.mark.anyio

TRACE = "5bf92f3577b34da6a3ce929d0e0e4736"
GATEWAY_SPAN = "10f067aa0ba902b7"


async def test_an_event_is_a_span_of_the_logged_requests_trace(open_store: OpenStore, traced: OtlpReceiver) -> None:
    store = open_store()
    ingest = Ingest(MonitorSettings(database=store.settings.database), store)
    trace = {"traceparent": f"00-{TRACE}-{GATEWAY_SPAN}-01"}
    headers, data = PayloadEvent(TARGET, "r1", REQUEST, "application/json", {}, None, trace=trace).to_http()
    assert headers["traceparent"] == trace["traceparent"]
    assert await call(ingest, headers, data) == (202, b"")
    (span,) = traced.wait_for(lambda spans: len(spans) == 1)
    assert (span.name, span.kind, span.trace_id, span.parent_id) == ("ingest", SERVER, TRACE, GATEWAY_SPAN)
    assert span.attributes == {
        "cloudevents.event_type": REQUEST_TYPE,
        "cloudevents.event_id": "r1",
        "wharf.service": "default/iris",
        "http.response.status_code": 202,
    }
