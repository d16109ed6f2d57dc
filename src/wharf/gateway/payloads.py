"""What the proxies hand the payload logger of an exchange with a revision that has a `logger`: the request and
the answer, named by one request id (the client's `x-request-id`, else one the gateway makes and forwards), and,
while tracing is on, the trace context of the request's span (posted with the events)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from wharf.errors import from_grpc_code
from wharf.gateway.routes import Replica
from wharf.gateway.upstream import Answer, Headers, HttpUpstream
from wharf.logger import LogTarget, PayloadEvent, PayloadLogger, Post
from wharf.telemetry import tracing

REQUEST_ID = "x-request-id"
REQUEST_ID_HEADER = REQUEST_ID.encode()
GRPC_REQUEST = "application/x-protobuf; messageType=inference.ModelInferRequest"
GRPC_RESPONSE = "application/x-protobuf; messageType=inference.ModelInferResponse"
_DEFAULT_CONTENT_TYPE = "application/json"
_GRPC_ERROR = "text/plain; charset=utf-8"  # a failed call's details

LogAnswer = Callable[[int, bytes, str, str | None], None]  # (HTTP status, body, content type, its JSON length)


def log_rest_exchange(
    logger: PayloadLogger, target: LogTarget | None, method: str, headers: Headers, body: bytes
) -> Callable[[Answer], None] | None:
    """Log a REST request (a POST: reads carry no payload) and return what logs its answer, or None."""
    if target is None or method != "POST":
        return None
    fields = [(key.decode("latin-1"), value.decode("utf-8", "replace")) for key, value in headers]
    request_id = _request_id(fields)
    if request_id is None:
        request_id = uuid.uuid4().hex
        headers.append((REQUEST_ID_HEADER, request_id.encode()))
    log = _log(logger, target, request_id, fields, body, _content_type(headers), _json_length(headers))
    if log is None:
        return None
    return lambda answer: log(answer.status, answer.body, _content_type(answer.headers), _json_length(answer.headers))


def log_grpc_exchange(
    logger: PayloadLogger, target: LogTarget | None, metadata: tuple[tuple[str, str | bytes], ...], request: bytes
) -> tuple[tuple[tuple[str, str | bytes], ...], Callable[[str, bytes | None, str], None] | None]:
    """Log a ModelInfer request; return the metadata to forward (with the request id) and what logs the answer
    (its status code name, body, and details when it failed), or None."""
    if target is None:
        return metadata, None
    fields = [(key, value) for key, value in metadata if isinstance(value, str)]
    request_id = _request_id(fields)
    if request_id is None:
        request_id = uuid.uuid4().hex
        metadata = (*metadata, (REQUEST_ID, request_id))
    log = _log(logger, target, request_id, fields, request, GRPC_REQUEST)
    if log is None:
        return metadata, None

    def log_answer(code: str, body: bytes | None, details: str) -> None:
        if body is None:
            log(from_grpc_code(code, details).http_status, details.encode(), _GRPC_ERROR, None)
        else:
            log(200, body, GRPC_RESPONSE, None)

    return metadata, log_answer


def _log(
    logger: PayloadLogger,
    target: LogTarget,
    request_id: str,
    fields: Iterable[tuple[str, str]],
    body: bytes,
    content_type: str,
    json_length: str | None = None,
) -> LogAnswer | None:
    """Submit the request's event (as the target's mode says); return what submits the answer's, or None."""
    kept = {name.lower(): name for name in target.metadata_headers}
    metadata: dict[str, list[str]] = {}
    for key, value in fields:
        if (name := kept.get(key.lower())) is not None:
            metadata.setdefault(name, []).append(value)
    trace = tracing.trace_headers() if tracing.enabled else None
    if target.requests:
        logger.submit(PayloadEvent(target, request_id, body, content_type, metadata, None, json_length, trace))
    if not target.responses:
        return None

    def log_answer(status: int, answer: bytes, answer_type: str, answer_json_length: str | None) -> None:
        event = PayloadEvent(target, request_id, answer, answer_type, metadata, status, answer_json_length, trace)
        logger.submit(event)

    return log_answer


def _request_id(fields: Iterable[tuple[str, str]]) -> str | None:
    return next((value for key, value in fields if key.lower() == REQUEST_ID), None)


def _json_length(headers: Headers) -> str | None:
    return next((v.decode("latin-1") for k, v in headers if k == b"inference-header-content-length"), None)


def _content_type(headers: Headers) -> str:
    return next((v.decode("latin-1") for k, v in headers if k == b"content-type"), _DEFAULT_CONTENT_TYPE)


class SinkPost:
    """Posts payload events to http:// sinks over the gateway's own lean pooled client (httpx costs about a
    millisecond of CPU per event, more than proxying the request did); other URLs go to `fallback`."""

    def __init__(self, upstream: HttpUpstream, fallback: Post) -> None:
        self._upstream = upstream
        self._fallback = fallback
        self._sinks: dict[str, tuple[Replica, str]] = {}  # url -> (the sink as an upstream, the request target)

    async def __call__(self, url: str, headers: dict[str, str], body: bytes) -> int:
        sink = self._sinks.get(url)
        if sink is None:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                return await self._fallback(url, headers, body)
            base = f"http://{parts.netloc}"
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            sink = self._sinks[url] = (Replica(parts.netloc, base, "", True, role="payload log sink"), target)
        replica, target = sink
        sent = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()]
        return (await self._upstream.send(replica, "POST", target, sent, body)).status
