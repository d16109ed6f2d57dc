"""Payload logging on `wharf up`: an InferenceService's `logger` sends its requests and responses to a sink."""

from __future__ import annotations

import time

import orjson

from tests.e2e.conftest import Daemon, manifest, ready, who_answers
from tests.event_sink import EventSink
from wharf.logger import REQUEST_TYPE, RESPONSE_TYPE


def test_a_logger_sends_each_request_and_response_to_its_url(daemon: Daemon) -> None:
    sink = EventSink()
    try:
        logger = f"{{url: '{sink.url}', mode: all, metadataHeaders: [X-User]}}"
        daemon.wharf("apply", "-f", "-", stdin=manifest("logged", "a", predictor={"logger": logger}))  # type: ignore[dict-item]
        daemon.wait("logged", ready)
        assert who_answers(daemon, "logged.default.example.com", 3, {"x-user": "ann"}) == ["a"] * 3
        events = sink.wait_for(6)
        assert sorted(event["type"] for event in events) == [REQUEST_TYPE] * 3 + [RESPONSE_TYPE] * 3
        assert len({event["id"] for event in events}) == 3  # a request and its response share an id
        for event in events:
            assert (event["inferenceservicename"], event["namespace"]) == ("logged", "default")
            assert (event["component"], event["endpoint"]) == ("predictor", "logged-predictor-00001")
            assert orjson.loads(event["metadata"]) == {"X-User": ["ann"]}
        sent = 'wharf_payload_log_events_total{outcome="sent"} 6.0'  # counted once the sink has answered
        deadline = time.monotonic() + 10
        while sent not in daemon.control().get("/metrics").text:
            assert time.monotonic() < deadline, "the control API's metrics never counted 6 events sent"
            time.sleep(0.05)
        responses = [event for event in events if event["type"] == RESPONSE_TYPE]
        assert all(orjson.loads(event.data)["outputs"][0]["data"] == ["a"] for event in responses)

        refused = daemon.wharf(
            "apply", "-f", "-", stdin=manifest("nowhere", "a", predictor={"logger": "{mode: all}"}), check=False
        )  # type: ignore[dict-item]
        assert refused.returncode != 0 and "spec.predictor.logger.url: required" in refused.stderr
    finally:
        sink.close()
