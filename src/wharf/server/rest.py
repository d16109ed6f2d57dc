"""REST transport: Open Inference Protocol V2 and KServe V1 over HTTP, as a bare ASGI application.

It only routes, decodes, calls the data plane and encodes; errors become `{"error": ...}` bodies here and
nowhere else. No web framework sits on the hot path.

Inference bodies above `DECODE_IN_THREAD_ABOVE` are decoded in one thread of their own, one body at a time, so
that the event loop goes on answering (health probes, small requests) while they decode, and two large bodies
never hold their decoding's transient memory at once. Parsed JSON takes up to ~10 times its text for numbers
(a float object and a list slot for "1.5,") and ~20 times for short strings (~80 bytes for '"a",'), so before
parsing, a large body's JSON text may hold at most one string per `_LIMIT_BYTES_PER_STRING` bytes of the body
limit (4 Mi strings at 64 MiB; counted by their quotes, ~5 ms for 64 MiB), else 413: larger BYTES tensors travel
as binary data. The JSON parse itself holds the GIL, so the loop may still wait for one parse (~10-25 ns a byte,
~0.3 s for 16 MiB). Smaller bodies, most requests, are decoded at once: a thread hop would cost more than their
decoding, and the check costs one comparison.

A model loaded on demand (the repository's catalogue) that is not in memory raises `NotLoaded` from the data
plane's lookup; only then is the request's wait for its load (`DataPlane.loaded`) awaited, so a model in memory
costs nothing more. `POST /v2/repository/models/{name}/load` with `{"parameters": {"storage_uri": ...}}` registers a
model in the catalogue (`wharf.model.catalogue`); `GET /v2/repository/memory` is the replica's memory summary.

Explain requests are decoded as their protocol's inference requests are: V2 `/explain` and `/infer` on the
`{name}-explainer` alias like `/infer` (the alias is looked up only once a model name is not found), V1 `:explain`
like `:predict` unless the model reads the body itself (`Model.v1_explain_request`).

While tracing is on (`wharf.telemetry.tracing`), each request is a SERVER span `{METHOD} {path}` continuing the
trace its headers carry (attributes `http.request.method`, `url.path`, `http.response.status_code`), with children
`decode` and `encode` around an inference request's decoding and encoding (and the model's own: see pipeline.py).
Off, a request pays a check of `tracing.enabled` at each of those three places.

Paths under `/openai/` go to OpenAI's API (`server/openai.py`, its own ASGI app, streams included), in a SERVER span
of their own while tracing is on; every other request pays one prefix check for it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from wharf.embedded_http import read_body
from wharf.errors import InvalidInput, MethodNotAllowed, ModelNotFound, NotFound, PayloadTooLarge, WharfError
from wharf.model import context
from wharf.model.base import Model, overrides
from wharf.model.repository import NotLoaded
from wharf.protocol import v1, v2
from wharf.protocol.v2 import InferRequest
from wharf.server.dataplane import Answer, DataPlane
from wharf.server.metrics import ServerMetrics
from wharf.telemetry import tracing

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
JSON = [(b"content-type", b"application/json")]
_OK = b'{"live":true}', b'{"ready":true}'
_ALIVE = b'{"status":"alive"}'  # KServe's V1 liveness answer at `/`
_BINARY_HEADER = v2.BINARY_HEADER.encode()
DECODE_IN_THREAD_ABOVE = 2**20
_LIMIT_BYTES_PER_STRING = 16
T = TypeVar("T")
V1Decoder = Callable[[bytes, str], InferRequest]
EXPLAIN_PROTOCOL = "v2-rest-explain"  # the metrics' protocol label of V2 explanations


class _Request:
    """What the handlers need of one HTTP request."""

    __slots__ = ("method", "parts", "headers", "receive", "limit", "body_timeout")

    def __init__(self, scope: dict[str, Any], receive: Receive, limit: int, body_timeout: float) -> None:
        self.method: str = scope["method"]
        self.parts: list[str] = scope["path"].strip("/").split("/")
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.receive = receive
        self.limit = limit
        self.body_timeout = body_timeout

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def int_header(self, name: bytes) -> int | None:
        value = self.header(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise InvalidInput(f"header {name.decode()} must be an integer") from None

    async def body(self) -> bytes:
        length = self.int_header(b"content-length")
        if length is not None and length > self.limit:
            raise PayloadTooLarge(f"request body of {length} bytes exceeds the limit of {self.limit}")
        return await read_body(self.receive, self.limit, self.body_timeout)


class _Reply:
    __slots__ = ("status", "body", "headers")

    def __init__(self, body: bytes, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or JSON


class RestApp:
    """ASGI application serving the V2 and V1 REST protocols, repository extension and /metrics; as KServe's server
    does, `GET /` answers liveness (`{"status": "alive"}`) and `GET /v1/models` lists the models (`{"models": [...]}`,
    every model of the repository, ready or not)."""

    def __init__(
        self,
        dataplane: DataPlane,
        metrics: ServerMetrics,
        max_request_bytes: int,
        body_timeout_s: float,
        openai: Callable[[dict[str, Any], Receive, Send], Awaitable[None]] | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.openai = openai  # the OpenAI API under /openai/ (server/openai.py), an ASGI app of its own
        self.metrics = metrics
        self.max_request_bytes = max_request_bytes
        self.body_timeout_s = body_timeout_s
        self.max_json_strings = max_request_bytes // _LIMIT_BYTES_PER_STRING
        self._decoding = ThreadPoolExecutor(1, thread_name_prefix="decode")  # its thread starts with a large body

    def close(self) -> None:
        self._decoding.shutdown(wait=False, cancel_futures=True)

    async def _decoded_in_thread(self, decode: Callable[..., T], body: bytes, json_end: int, *args: Any) -> T:
        """`decode(body, *args)` for a large body whose JSON text ends at `json_end`, in the decoding thread."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._decoding, self._decode_large, decode, body, json_end, *args)
        except WharfError as e:
            # an exception raised through a future refers back to it from its traceback: a cycle that would keep
            # the parsed body alive until the next full collection
            raise e.with_traceback(None) from None

    def _decode_large(self, decode: Callable[..., T], body: bytes, json_end: int, *args: Any) -> T:
        strings = body.count(b'"', 0, json_end) // 2
        if strings > self.max_json_strings:
            raise PayloadTooLarge(
                f"the request's JSON holds {strings} strings, more than the {self.max_json_strings} allowed; "
                "send large BYTES tensors as binary data (Inference-Header-Content-Length) or over gRPC"
            )
        return decode(body, *args)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self.openai is not None and scope["path"].startswith("/openai/"):  # one prefix check per request
            if not tracing.enabled:
                return await self.openai(scope, receive, send)
            attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
            with tracing.server_span(f"{scope['method']} {scope['path']}", scope["headers"], attributes):
                return await self.openai(scope, receive, send)  # a stream's span lasts until its last event
        request = _Request(scope, receive, self.max_request_bytes, self.body_timeout_s)
        context.serving(request.headers)
        if tracing.enabled:
            path = scope["path"]
            attributes = {"http.request.method": request.method, "url.path": path}
            with tracing.server_span(f"{request.method} {path}", request.headers, attributes) as span:
                reply = await self._reply(request, path)
                span.set_attribute("http.response.status_code", reply.status)
                tracing.failed(reply.status)
        else:
            reply = await self._reply(request, scope["path"])
        headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _reply(self, request: _Request, path: str) -> _Reply:
        parts = request.parts
        try:
            if len(parts) == 4 and parts[3] == "infer" and parts[0] == "v2" and parts[1] == "models":
                _expect(request, "POST")  # V2 inference, most requests: three routing levels fewer
                return await self._infer(request, parts[2], None)
            return await self._route(request)
        except WharfError as e:
            return _error(e)
        except Exception as e:  # a fault of the server itself, not of the request
            log.exception("unhandled error", extra={"path": path})
            return _Reply(v2.dumps({"error": f"internal error: {type(e).__name__}: {e}"}), 500)

    async def _route(self, request: _Request) -> _Reply:
        parts = request.parts
        head = parts[0]
        if head == "v2":
            return await self._v2(request, parts[1:])
        if head == "v1" and len(parts) == 3 and parts[1] == "models":
            return await self._v1(request, parts[2])
        if head == "v1" and len(parts) == 2 and parts[1] == "models":
            _expect(request, "GET")
            return _Reply(v2.dumps({"models": self.dataplane.model_names()}))
        if head == "" and len(parts) == 1:  # KServe's V1 liveness (`InferenceRESTClient.is_server_live`)
            _expect(request, "GET")
            return _Reply(_ALIVE)
        if head == "metrics" and len(parts) == 1:
            _expect(request, "GET")
            return _Reply(self.metrics.render(), headers=[(b"content-type", self.metrics.content_type.encode())])
        raise NotFound(f"no endpoint {'/'.join(parts)!r}")

    async def _v2(self, request: _Request, parts: list[str]) -> _Reply:
        dp = self.dataplane
        n = len(parts)
        if n == 0:
            _expect(request, "GET")
            return _Reply(v2.dumps(dp.server_metadata()))
        if parts[0] == "health" and n == 2 and parts[1] in ("live", "ready"):
            _expect(request, "GET")
            ok = dp.live() if parts[1] == "live" else dp.ready()
            return _Reply(_OK[parts[1] == "ready"] if ok else v2.dumps({parts[1]: False}), 200 if ok else 503)
        if parts[0] == "models" and n >= 2:
            return await self._v2_model(request, parts[1], parts[2:])
        if parts[0] == "repository":
            return await self._repository(request, parts[1:])
        raise NotFound(f"no endpoint 'v2/{'/'.join(parts)}'")

    async def _v2_model(self, request: _Request, name: str, rest: list[str]) -> _Reply:
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        if not rest:
            _expect(request, "GET")
            return _Reply(v2.dumps(self.dataplane.model_metadata(name, version)))
        if rest == ["ready"]:
            _expect(request, "GET")
            ready = self.dataplane.model_ready(name, version)
            return _Reply(v2.dumps({"name": name, "ready": ready}), 200 if ready else 503)
        if rest == ["infer"]:
            _expect(request, "POST")
            return await self._infer(request, name, version)
        if rest == ["explain"]:
            _expect(request, "POST")
            return await self._explain_v2(request, await self._model(name, version))
        raise NotFound(f"no endpoint for model '{name}': {'/'.join(rest)!r}")

    async def _model(self, name: str, version: str | None = None) -> Model:
        """The model answering `name`, loaded first if it is loaded on demand and not in memory."""
        try:
            return self.dataplane.model(name, version)
        except NotLoaded:
            return await self.dataplane.loaded(name, version)

    async def _infer(self, request: _Request, name: str, version: str | None) -> _Reply:
        dataplane = self.dataplane
        try:
            model = dataplane.model(name, version)
        except ModelNotFound as e:
            return await self._explain_v2(request, dataplane.explained(name, version, e))  # `{model}-explainer`
        except NotLoaded:
            model = await dataplane.loaded(name, version)
        return await self.metrics.measured(model.name, "v2-rest", self._answer_v2(request, model, dataplane.infer))

    async def _explain_v2(self, request: _Request, model: Model) -> _Reply:
        answer = self._answer_v2(request, model, self.dataplane.explain_as_response)
        return await self.metrics.measured(model.name, EXPLAIN_PROTOCOL, answer)

    async def _answer_v2(self, request: _Request, model: Model, answer: Answer) -> _Reply:
        """The V2 response `answer` (inference or explanation) gives to the V2 request `request` carries."""
        if tracing.enabled:
            with tracing.span("decode"):
                infer_request = await self._v2_request(request)
            response = await answer(model, infer_request)
            with tracing.span("encode"):
                payload, header_length = v2.encode_response(response, infer_request)
        else:
            infer_request = await self._v2_request(request)
            response = await answer(model, infer_request)
            payload, header_length = v2.encode_response(response, infer_request)
        if header_length is None:
            return _Reply(payload)
        return _Reply(
            payload,
            headers=[
                (b"content-type", b"application/octet-stream"),
                (_BINARY_HEADER, str(header_length).encode()),
            ],
        )

    async def _v2_request(self, request: _Request) -> InferRequest:
        body = await request.body()
        header_length = request.int_header(_BINARY_HEADER)
        if len(body) > DECODE_IN_THREAD_ABOVE:
            json_end = len(body) if header_length is None else header_length
            return await self._decoded_in_thread(v2.decode_request, body, json_end, header_length)
        return v2.decode_request(body, header_length)

    async def _v1(self, request: _Request, target: str) -> _Reply:
        name, _, verb = target.partition(":")
        if not verb:
            _expect(request, "GET")
            ready = self.dataplane.model_ready(name)
            return _Reply(v1.model_status(name, ready), 200 if ready else 503)
        if verb not in ("predict", "explain"):
            raise NotFound(f"no V1 verb {verb!r}; this server offers ':predict' and ':explain'")
        _expect(request, "POST")
        try:
            model = self.dataplane.model(name)
        except NotLoaded:
            model = await self.dataplane.loaded(name)
        call = self._predict_v1(request, model) if verb == "predict" else self._explain_v1(request, model)
        return await self.metrics.measured(model.name, "v1-rest" if verb == "predict" else "v1-rest-explain", call)

    async def _v1_request(self, request: _Request, model: Model, decode: V1Decoder = v1.decode_request) -> InferRequest:
        declared = model.inputs()
        body, input_name = await request.body(), declared[0].name if declared else "input-0"
        if len(body) > DECODE_IN_THREAD_ABOVE:
            return await self._decoded_in_thread(decode, body, len(body), input_name)
        return decode(body, input_name)

    async def _predict_v1(self, request: _Request, model: Model) -> _Reply:
        if tracing.enabled:
            with tracing.span("decode"):
                infer_request = await self._v1_request(request, model)
            response = await self.dataplane.infer(model, infer_request)
            with tracing.span("encode"):
                return _Reply(v1.encode_response(response))
        infer_request = await self._v1_request(request, model)
        return _Reply(v1.encode_response(await self.dataplane.infer(model, infer_request)))

    async def _explain_v1(self, request: _Request, model: Model) -> _Reply:
        reads_itself = overrides(model, "v1_explain_request")
        decode = functools.partial(_v1_explain_request, model) if reads_itself else v1.decode_request
        explanation = await self.dataplane.explain_as_json(model, await self._v1_request(request, model, decode))
        return _Reply(v2.dumps(explanation))

    async def _repository(self, request: _Request, parts: list[str]) -> _Reply:
        if parts == ["memory"]:
            _expect(request, "GET")
            return _Reply(v2.dumps(self.dataplane.repository_memory()))
        _expect(request, "POST")
        if parts == ["index"]:
            body = await request.body()
            ready_only = bool(v2.loads_object(body).get("ready", False)) if body.strip() else False
            return _Reply(v2.dumps(self.dataplane.repository_index(ready_only)))
        if len(parts) == 3 and parts[0] == "models" and parts[2] in ("load", "unload"):
            body = await request.body()
            if parts[2] == "load":
                parameters = v2.loads_object(body).get("parameters") if body.strip() else None
                await self.dataplane.load(parts[1], parameters)
            else:
                await self.dataplane.unload(parts[1])
            return _Reply(b"{}")
        raise NotFound(f"no endpoint 'v2/repository/{'/'.join(parts)}'")


def _v1_explain_request(model: Model, body: bytes, _input_name: str) -> InferRequest:
    """A V1 `:explain` body read by the model's own `v1_explain_request` (its ValueError or TypeError: 400)."""
    document = v2.loads_object(body)
    try:
        return model.v1_explain_request(document)
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"model '{model.name}' rejected the explain request: {e}") from None


def _expect(request: _Request, method: str) -> None:
    if request.method != method:
        raise MethodNotAllowed(f"{request.method} is not allowed here; use {method}", method)


def _error(error: WharfError) -> _Reply:
    allowed = error.allowed if isinstance(error, MethodNotAllowed) else None
    headers = [*JSON, (b"allow", allowed.encode())] if allowed else None
    return _Reply(v2.dumps({"error": error.message}), error.http_status, headers)
