"""`PayloadLogger` and its events, against a real HTTP sink."""

from __future__ import annotations

import time

import pytest
from cloudevents.http import from_http

from tests.event_sink import EventSink
from wharf.logger import REQUEST_TYPE, RESPONSE_TYPE, LogTarget, PayloadEvent, PayloadLogger

pytestmark = pytest.mark.anyio


def _event(sink_url: str, id: str, status: int | None = None, body: bytes = b"\xff\x00") -> PayloadEvent:
    target = LogTarget(
        sink_url, "all", "iris", "ns", "predictor", "iris-predictor-00001", "http://iris.ns.example.com", ("X-User",)
    )
    return PayloadEvent(target, id, body, "application/octet-stream", {}, status)


def test_binary_mode_headers_carry_the_attributes_and_the_body_is_the_payload() -> None:
    headers, body = _event("http://sink", "r1", status=503).to_http()
    assert body == b"\xff\x00" and headers["content-type"] == "application/octet-stream"
    assert headers["ce-specversion"] == "1.0" and headers["ce-type"] == RESPONSE_TYPE and headers["ce-id"] == "r1"
    assert headers["ce-statuscode"] == "503" and headers["ce-endpoint"] == "iris-predictor-00001"
    assert headers["ce-metadata"] == "{}"  # there whenever the logger names headers to keep, as KServe sends it
    assert _event("http://sink", "r1").to_http()[0]["ce-type"] == REQUEST_TYPE


def test_header_values_stay_ascii_and_read_back_with_the_sdk() -> None:
    event = _event("http://sink", "id é")
    event = PayloadEvent(event.target, "id é", b"{}", "text/plain é", {"X-User": ['café "x"']})
    headers, body = event.to_http()
    assert all(value.isascii() for value in headers.values())
    assert headers["content-type"] == "application/octet-stream" and headers["ce-id"] == "id %C3%A9"
    assert from_http(headers, body)["metadata"] == '{"X-User":["caf\\u00e9 \\"x\\""]}'  # JSON, as sent


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
        logger.submit(_event(sink.url, "late"))  # a closed logger starts nothing again
        assert logger.counts["dropped"] == 3
    finally:
        sink.close()


async def test_queued_payload_bytes_are_bounded_too() -> None:
    sink = EventSink()
    logger = PayloadLogger(queue_bytes=10, senders=1)
    try:
        logger.submit(_event(sink.url, "a", body=b"x" * 6))
        logger.submit(_event(sink.url, "b", body=b"x" * 6))  # 12 bytes would wait: dropped
        logger.submit(_event(sink.url, "c", body=b"x" * 4))
        await logger.close()
        assert logger.counts == {"sent": 2, "dropped": 1, "failed": 0}
    finally:
        sink.close()


async def test_a_sink_slower_than_the_timeout_loses_the_event_and_close_counts_what_is_left() -> None:
    sink = EventSink(delay_s=2)
    logger = PayloadLogger(senders=1, timeout_s=0.3)
    try:
        started = time.monotonic()
        for i in range(4):
            logger.submit(_event(sink.url, str(i)))
        await logger.flush(0.5)  # the first times out after 0.3 s; the second is cut off by the close below
        await logger.close(0)
        assert time.monotonic() - started < 1.5
        assert logger.counts == {"sent": 0, "dropped": 0, "failed": 4}
    finally:
        sink.close()
