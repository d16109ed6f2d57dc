"""Reading payload log events, pairing requests with responses, and the sink's answers."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from tests.unit.monitor.conftest import OpenStore
from wharf.errors import InvalidInput
from wharf.logger.events import REQUEST_TYPE, RESPONSE_TYPE, LogTarget, PayloadEvent
from wharf.monitor.ingest import Event, Half, Ingest, Pairing, decode_half, parse_event
from wharf.monitor.settings import MonitorSettings

pytestmark = pytest.mark.anyio

TARGET = LogTarget("http://sink", "all", "iris", "default", "predictor", "iris-predictor-00001", "http://iris")
REQUEST = orjson.dumps({"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP32", "data": [1.5, 2.5]}]})
RESPONSE = orjson.dumps(
    {"model_name": "iris", "outputs": [{"name": "predict", "shape": [1], "datatype": "INT64", "data": [2]}]}
)


def asgi_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def logged(request_id: str, status: int | None = None, body: bytes | None = None, target: LogTarget = TARGET) -> Event:
    """An event as the gateway's payload logger sends it."""
    default = REQUEST if status is None else RESPONSE
    headers, data = PayloadEvent(target, request_id, body or default, "application/json", {}, status).to_http()
    return parse_event(asgi_headers(headers), data, 0.0)


def test_the_loggers_events_read_as_the_sdks() -> None:
    event = logged("r1", status=200)
    assert (event.id, event.type, event.model, event.namespace, event.endpoint) == (
        "r1",
        RESPONSE_TYPE,
        "iris",
        "default",
        "iris-predictor-00001",
    )
    assert event.status == 200 and event.time > 0 and event.body == RESPONSE
    transformer = logged("r1", target=LogTarget("u", "all", "iris", "ns", "transformer", "iris-t-1", "http://iris"))
    assert transformer.model == "iris-transformer" and transformer.key != logged("r1").key


def test_events_made_with_the_sdk_binary_and_structured() -> None:
    attributes = {"type": REQUEST_TYPE, "source": "http://x", "id": "e1", "inferenceservicename": "iris"}
    headers, body = to_binary(CloudEvent(attributes, REQUEST))
    event = parse_event(asgi_headers(headers), body, 12.0)
    assert event.body == REQUEST and event.time > 0 and event.namespace == ""
    structured = CloudEvent({**attributes, "datacontenttype": "application/json"}, orjson.loads(REQUEST))
    headers, body = to_structured(structured)
    event = parse_event(asgi_headers(headers), body, 12.0)
    assert decode_half(event).table.names == ("input-0-0", "input-0-1")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"ce-specversion": None}, "not a CloudEvent: no ce-specversion"),
        ({"ce-specversion": "0.3"}, "'0.3' is not supported"),
        ({"ce-type": "com.example.other"}, "unknown event type 'com.example.other'"),
        ({"ce-id": None}, "no ce-id"),
        ({"ce-inferenceservicename": None}, "names no InferenceService"),
        ({"ce-time": "yesterday"}, "ce-time must be an RFC 3339 time"),
        ({"ce-statuscode": "ok"}, "ce-statuscode must be an integer"),
        ({"content-type": "application/cloudevents-batch+json"}, "batched CloudEvents are not taken"),
    ],
)
def test_what_is_not_a_payload_log_event_is_named(change: dict[str, str | None], problem: str) -> None:
    headers, body = PayloadEvent(TARGET, "r1", RESPONSE, "application/json", {}, 200).to_http()
    for name, value in change.items():
        headers.pop(name, None)
        if value is not None:
            headers[name] = value
    with pytest.raises(InvalidInput, match=problem):
        parse_event(asgi_headers(headers), body, 0.0)


def test_halves_decode_and_error_answers_keep_no_outputs() -> None:
    assert decode_half(logged("r1")).table.rows == 1
    assert decode_half(logged("r1", status=500, body=b'{"error": "boom"}')).table is None
    with pytest.raises(InvalidInput, match="malformed JSON"):
        decode_half(logged("r1", body=b"{oops"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def half(request_id: str, request: bool = True) -> Half:
    return Half(logged(request_id, None if request else 200), None)


def test_a_request_and_its_response_pair_in_either_order() -> None:
    pairing = Pairing(timeout_s=10, limit=10, clock=Clock())
    assert pairing.match(half("a")) is None and pairing.match(half("b", request=False)) is None
    request, response = pairing.match(half("a", request=False))
    assert request.event.is_request and not response.event.is_request
    request, response = pairing.match(half("b"))
    assert request.event.is_request and response.event.id == "b"
    assert len(pairing) == 0 and pairing.dropped == 0


def test_unpaired_halves_go_after_the_timeout_or_past_the_limit_and_are_counted() -> None:
    clock = Clock()
    pairing = Pairing(timeout_s=10, limit=2, clock=clock)
    pairing.match(half("a"))
    clock.now = 5
    pairing.match(half("b"))
    clock.now = 11  # a's time is up
    pairing.match(half("c"))
    assert len(pairing) == 2 and pairing.dropped == 1
    pairing.match(half("d"))  # past the limit: b, the oldest, goes
    assert pairing.dropped == 2 and pairing.match(half("b", request=False)) is None  # c, the oldest, goes
    pairing.match(half("d"))  # the same half twice: the newer waits
    assert pairing.dropped == 4
    clock.now = 100
    pairing.expire()
    assert len(pairing) == 0 and pairing.dropped == 6


async def call(ingest: Ingest, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """One request to the ASGI endpoint: its status and body."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await ingest({"type": "http", "method": "POST", "path": "/", "headers": asgi_headers(headers)}, receive, send)
    return sent[0]["status"], sent[1]["body"]


async def test_the_endpoint_stores_pairs_and_answers_problems_with_their_name(open_store: OpenStore) -> None:
    store = open_store()
    ingest = Ingest(MonitorSettings(database=store.settings.database), store)
    for status, body in ((None, REQUEST), (200, RESPONSE)):
        headers, data = PayloadEvent(TARGET, "r1", body, "application/json", {}, status).to_http()
        assert await call(ingest, headers, data) == (202, b"")
    headers, data = PayloadEvent(TARGET, "r2", b"[1]", "application/json", {}, None).to_http()
    status, answer = await call(ingest, headers, data)
    assert status == 400 and orjson.loads(answer) == {"error": "request body must be a JSON object"}
    wider = orjson.dumps({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})
    for status, body in ((None, wider), (200, RESPONSE)):
        headers, data = PayloadEvent(TARGET, "r3", body, "application/json", {}, status).to_http()
        answered = await call(ingest, headers, data)
    assert answered[0] == 400 and b"unexpected: ['input-0-2']" in answered[1]
    await store.flush()
    assert store.inferences("iris")["input-0-1"].tolist() == [2.5]
    assert ingest.counts == {
        "received_request": 3,
        "received_response": 2,
        "paired": 1,
        "refused_payload": 1,
        "refused_columns": 1,
    }
    assert np.isfinite(store.inferences("iris")["predict"]).all()
