"""`PayloadLogger` and its events, against a real HTTP sink."""

from __future__ import annotations

import pytest

from tests.event_sink import EventSink
from wharf.logger import REQUEST_TYPE, RESPONSE_TYPE, LogTarget, PayloadEvent, PayloadLogger

pytestmark = pytest.mark.anyio


def _event(sink_url: str, id: str, status: int | None = None) -> PayloadEvent:
    target = LogTarget(sink_url, "all", "iris", "ns", "predictor", "iris-predictor-00001", "http://iris.ns.example.com")
    return PayloadEvent(target, id, b"\xff\x00", "application/octet-stream", {}, status)


def test_binary_mode_headers_carry_the_attributes_and_the_body_is_the_payload() -> None:
    headers, body = _event("http://sink", "r1", status=503).to_http()
    assert body == b"\xff\x00" and headers["content-type"] == "application/octet-stream"
    assert headers["ce-specversion"] == "1.0" and headers["ce-type"] == RESPONSE_TYPE and headers["ce-id"] == "r1"
    assert headers["ce-statuscode"] == "503" and headers["ce-endpoint"] == "iris-predictor-00001"
    assert _event("http://sink", "r1").to_http()[0]["ce-type"] == REQUEST_TYPE


async def test_a_full_queue_drops_new_events_and_close_sends_the_queued_ones() -> None:
    sink = EventSink()
    logger = PayloadLogger(queue_size=1, senders=1)
    try:
        for i in range(3):  # nothing awaited in between: the sender has taken none yet, so one fits
            logger.submit(_event(sink.url, str(i)))
        assert logger.counts["dropped"] == 2
        await logger.close()
        assert logger.counts == {"sent": 1, "dropped": 2, "failed": 0}
        assert [event["id"] for event in sink.events] == ["0"]
    finally:
        sink.close()
