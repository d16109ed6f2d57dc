"""The CloudEvents sink: payload log events in, exchanges (a request and its response) out to the store.

Events are KServe's inference-logger CloudEvents (`wharf.logger.events`): types `...inference.request` and
`...inference.response`, the extensions `inferenceservicename`, `namespace`, `component`, `endpoint` (the
revision), `statuscode` (a response's HTTP status) and `inferenceheadercontentlength` (a body with binary tensors),
and the request's id shared by both halves. A service's logger points at the monitor (`logger.url:
http://127.0.0.1:8003/`) as KServe users point one at TrustyAI.

Each half is decoded as it arrives (`wharf.monitor.payloads`), so a malformed one is answered 400 naming the
problem; then it waits for its other half (either may come first), keyed by namespace, service, component and id.
A half waits at most `pairing_timeout_s`, and at most `max_unpaired` halves wait (the oldest goes first); what goes
unpaired is counted. A pair becomes rows of the model named after the service (`SERVICE-COMPONENT` for a component
other than the predictor, such as a transformer), as TrustyAI names a KServe model by its InferenceService; a
response answered with an error status keeps its request's row without outputs.

Binary-mode events are read straight from the ASGI headers: the CloudEvents SDK's `from_http` costs about 80 µs an
event, as much as the rest of an event's work together; structured mode (`application/cloudevents+json`, not sent
by KServe's logger) goes through the SDK. Per event: the headers looked through once, the body decoded, a dict
lookup to pair; bodies over 1 MiB are decoded in a thread, so the loop keeps answering meanwhile. Measured: about
170 µs of the process's CPU an event (a small V2 request or response over keep-alive HTTP, uvicorn and the writer
included) on a busy two-core machine, some 6,000 events a second on one core; the protocol's decoders and uvicorn
take most of it.

While tracing is on (`wharf.telemetry.tracing`), each event posted is a SERVER span `ingest` continuing the trace
its headers carry (the gateway's payload logger sends the logged request's `traceparent`), with the attributes
`cloudevents.event_type`, `cloudevents.event_id`, `wharf.service` (namespace/name) and `http.response.status_code`.
Off, a check of `tracing.enabled` per event.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from wharf.embedded_http import read_body
from wharf.errors import InvalidInput, WharfError
from wharf.logger.events import REQUEST_TYPE, RESPONSE_TYPE
from wharf.monitor.payloads import Table, request_table, response_table
from wharf.monitor.settings import MonitorSettings
from wharf.monitor.store import Exchange, MonitorStore
from wharf.telemetry import tracing

STRUCTURED = "application/cloudevents"  # +json; the batch mode (cloudevents-batch+json) is refused
PREDICTOR = "predictor"
_IN_THREAD_ABOVE = 2**20  # bodies larger than this are decoded off the event loop
_DEFAULT_TYPE = "application/json"
_ANSWERED = {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]}
_EMPTY = {"type": "http.response.body", "body": b""}
Key = tuple[str, str, str, str]  # namespace, service, component, id
# The attributes the monitor reads, and their binary-mode headers.
_ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "inferenceservicename",
    "namespace",
    "component",
    "endpoint",
    "statuscode",
    "inferenceheadercontentlength",
)
_HEADERS = tuple((name, f"ce-{name}".encode()) for name in _ATTRIBUTES)


@dataclass(slots=True)  # not frozen: a frozen dataclass costs 3 µs more to make, per event
class Event:
    """A payload log event's attributes and body."""

    id: str
    type: str
    service: str
    namespace: str
    component: str
    endpoint: str
    time: float
    status: int | None  # a response's
    content_type: str
    json_length: str | None
    body: bytes

    @property
    def is_request(self) -> bool:
        return self.type == REQUEST_TYPE

    @property
    def model(self) -> str:
        """The model its rows belong to: the InferenceService, or SERVICE-COMPONENT for other than its predictor."""
        return self.service if self.component in ("", PREDICTOR) else f"{self.service}-{self.component}"

    @property
    def key(self) -> Key:
        return (self.namespace, self.service, self.component, self.id)


def parse_event(headers: list[tuple[bytes, bytes]], body: bytes, arrived: float) -> Event:
    """The event an HTTP request carries (binary or structured mode); `InvalidInput` naming what is wrong."""
    fields = dict(headers)  # ASGI header names are lower case
    content_type = fields.get(b"content-type", b"").decode("latin-1") or _DEFAULT_TYPE
    if content_type.startswith(STRUCTURED):
        attributes, body, content_type = _structured(headers, body, content_type)
    else:
        attributes = {name: fields[header].decode("latin-1") for name, header in _HEADERS if header in fields}
    version = attributes.get("specversion")
    if version is None:
        raise InvalidInput(
            "not a CloudEvent: no ce-specversion header; send CloudEvents 1.0 in binary or structured mode"
        )
    if version != "1.0":
        raise InvalidInput(f"ce-specversion {version!r} is not supported; send CloudEvents 1.0")
    for required in ("id", "source", "type"):
        if not attributes.get(required):
            raise InvalidInput(f"the event has no ce-{required}")
    kind = attributes["type"]
    if kind not in (REQUEST_TYPE, RESPONSE_TYPE):
        raise InvalidInput(f"unknown event type {kind!r}; the monitor takes {REQUEST_TYPE} and {RESPONSE_TYPE}")
    service = attributes.get("inferenceservicename")
    if not service:
        raise InvalidInput("the event names no InferenceService (ce-inferenceservicename)")
    status = None
    if kind == RESPONSE_TYPE:
        status = _integer(attributes.get("statuscode", "200"), "ce-statuscode")
    when = attributes.get("time")
    return Event(
        id=attributes["id"],
        type=kind,
        service=service,
        namespace=attributes.get("namespace", ""),
        component=attributes.get("component", ""),
        endpoint=attributes.get("endpoint", ""),
        time=arrived if when is None else _time(when),
        status=status,
        content_type=content_type,
        json_length=attributes.get("inferenceheadercontentlength"),
        body=body,
    )


def _structured(
    headers: list[tuple[bytes, bytes]], body: bytes, content_type: str
) -> tuple[dict[str, str], bytes, str]:
    """A structured-mode event, read with the CloudEvents SDK: its attributes, its data as bytes and their type."""
    from cloudevents.exceptions import GenericException
    from cloudevents.http import from_http

    if content_type.startswith(f"{STRUCTURED}-batch"):
        raise InvalidInput("batched CloudEvents are not taken; send one event a request")
    try:
        event = from_http({k.decode("latin-1"): v.decode("latin-1") for k, v in headers}, body, lambda data: data)
    except GenericException as e:
        raise InvalidInput(f"malformed structured CloudEvent: {e}") from None
    attributes = {name: str(value) for name, value in event.get_attributes().items()}
    data = event.get_data()  # the data's JSON text, or the bytes of `data_base64`
    if data is None:
        data = b""
    elif isinstance(data, str):
        data = data.encode()
    elif not isinstance(data, bytes | bytearray):
        data = orjson.dumps(data)
    return attributes, bytes(data), attributes.get("datacontenttype", _DEFAULT_TYPE)


def _integer(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {value!r}") from None


def _time(value: str) -> float:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"ce-time must be an RFC 3339 time, got {value!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(slots=True)
class Half:
    """One half of an exchange, decoded: its rows (None for an error response) and what its event said."""

    event: Event
    table: Table | None


def decode_half(event: Event) -> Half:
    """Decode an event's body into rows (`InvalidInput` naming what is wrong with it)."""
    if event.is_request:
        return Half(event, request_table(event.body, event.content_type, event.json_length))
    if event.status is not None and event.status >= 400:
        return Half(event, None)
    return Half(event, response_table(event.body, event.content_type, event.json_length))


class Pairing:
    """Halves waiting for their other half (see the module's docstring); pure apart from `clock`."""

    def __init__(self, timeout_s: float, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout_s = timeout_s
        self._limit = limit
        self._clock = clock
        self._waiting: dict[Key, tuple[float, Half]] = {}  # in the order they came, so deadlines are in order too
        self.dropped = 0  # halves that went unpaired

    def __len__(self) -> int:
        return len(self._waiting)

    def match(self, half: Half) -> tuple[Half, Half] | None:
        """The request and response once both came; else None and `half` waits."""
        now = self._clock()
        self.expire(now)
        key = half.event.key
        waiting = self._waiting.pop(key, None)
        if waiting is not None:
            other = waiting[1]
            if other.event.is_request != half.event.is_request:
                return (half, other) if half.event.is_request else (other, half)
            self.dropped += 1  # the same half twice: the newer one waits instead
        if len(self._waiting) >= self._limit:
            del self._waiting[next(iter(self._waiting))]
            self.dropped += 1
        self._waiting[key] = (now + self._timeout_s, half)
        return None

    def expire(self, now: float | None = None) -> None:
        """Drop the halves that waited too long."""
        now = self._clock() if now is None else now
        waiting = self._waiting
        while waiting:
            key = next(iter(waiting))
            if waiting[key][0] > now:
                return
            del waiting[key]
            self.dropped += 1


def exchange(request: Half, response: Half) -> Exchange:
    """The exchange a pair makes."""
    event, answer = request.event, response.event
    assert request.table is not None
    return Exchange(
        model=event.model,
        request_id=event.id,
        time=event.time,
        status=answer.status if answer.status is not None else 200,
        namespace=event.namespace,
        revision=answer.endpoint or event.endpoint,
        inputs=request.table,
        outputs=response.table,
    )


def _traced(event: Event) -> dict[str, str]:
    """An event's attributes on its span."""
    return {
        "cloudevents.event_type": event.type,
        "cloudevents.event_id": event.id,
        "wharf.service": f"{event.namespace}/{event.service}",
    }


class Ingest:
    """The ASGI endpoint events are posted to (`POST /`): answers 202 once an event is decoded and paired (its rows
    are written later), else the error naming the problem; `counts` counts what came and what became of it.

    Two hooks, for the detectors: `skip(event id)` true answers an event 202 and counts it as skipped before it is
    decoded (the detectors' own calls of a model, which the gateway logs too); `on_stored(request event, exchange)`
    is called with each exchange handed to the store, in the event loop, and must only queue it."""

    def __init__(self, settings: MonitorSettings, store: MonitorStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._limit = settings.max_event_bytes
        self._timeout_s = settings.body_timeout_s
        self._clock = clock
        self.pairing = Pairing(settings.pairing_timeout_s, settings.max_unpaired)
        self.counts: Counter[str] = Counter()  # received_*, paired, skipped, refused_*
        self.skip: Callable[[str], bool] | None = None
        self.on_stored: Callable[[Event, Exchange], None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        if tracing.enabled:
            with tracing.server_span("ingest", scope["headers"]) as span:
                status = await self._ingest(scope, receive, send)
                span.set_attribute("http.response.status_code", status)
        else:
            await self._ingest(scope, receive, send)

    async def _ingest(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> int:
        """Take one posted event; the status answered."""
        reason = "body"
        try:
            body = await read_body(receive, self._limit, self._timeout_s)
            reason = "event"
            event = parse_event(scope["headers"], body, self._clock())
            if tracing.enabled:
                tracing.annotate(_traced(event))
            self.counts["received_request" if event.is_request else "received_response"] += 1
            if self.skip is not None and self.skip(event.id):
                self.counts["skipped"] += 1
                await send(_ANSWERED)
                await send(_EMPTY)
                return 202
            reason = "payload"
            half = await asyncio.to_thread(decode_half, event) if len(body) > _IN_THREAD_ABOVE else decode_half(event)
            reason = "columns"
            self.accept(half)
        except WharfError as e:
            self.counts[f"refused_{reason if e.http_status < 500 else 'busy'}"] += 1
            answer = orjson.dumps({"error": e.message})
            await send(
                {
                    "type": "http.response.start",
                    "status": e.http_status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return e.http_status
        await send(_ANSWERED)
        await send(_EMPTY)
        return 202

    def accept(self, half: Half) -> None:
        """Pair a decoded half; a whole exchange goes to the store (`InvalidInput` if it does not fit its model)."""
        pair = self.pairing.match(half)
        if pair is not None:
            stored = exchange(*pair)
            self._store.add_exchange(stored)
            self.counts["paired"] += 1
            if self.on_stored is not None:
                self.on_stored(pair[0].event, stored)
