"""`InferenceClient`: calls a model server, or Wharf's gateway, over KServe V1 REST, Open Inference Protocol V2
REST or V2 gRPC (what transformers use to reach their predictor); `SyncInferenceClient` is the same client for
code without an event loop.

Errors a server answers with are raised as their `wharf.errors` type carrying the server's message; a server that
cannot be reached raises `ServerUnreachable`, one that does not answer within `timeout_s` raises `RequestTimeout`,
each naming the URL or target.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, Self, TypeVar, get_args

import grpc
import httpx
import orjson

from wharf.errors import (
    ConfigurationError,
    InvalidInput,
    RequestTimeout,
    ServerUnreachable,
    WharfError,
    answered,
    from_grpc_code,
    from_http_status,
)
from wharf.protocol import v1, v2
from wharf.protocol.explanation import EXPLAINER_SUFFIX
from wharf.protocol.grpc import codec
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from wharf.protocol.v2 import InferRequest, InferResponse

Protocol = Literal["v1", "v2", "grpc-v2"]
PREDICTIONS = "predictions"  # the one output a V1 answer becomes
_JSON = {"content-type": "application/json"}
# The server enforces its own message size limit; the client adds none.
_GRPC_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
T = TypeVar("T")


class InferenceClient:
    """A client of one model server (REST at `url`, gRPC at `grpc_target`) speaking `protocol` for `infer`.

    `headers` are sent with every HTTP request (e.g. `{"host": "iris-predictor.default.example.com"}` through
    Wharf's gateway), `metadata` with every gRPC call (e.g. `{"x-wharf-service": "default/iris-predictor"}`).
    One pooled HTTP client and one gRPC channel serve all calls; use it as an async context manager or `close` it.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        grpc_target: str | None = None,
        protocol: Protocol = "v2",
        timeout_s: float = 60.0,
        headers: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if protocol not in get_args(Protocol):
            raise ConfigurationError(f"unknown protocol {protocol!r}; expected one of {', '.join(get_args(Protocol))}")
        if protocol == "grpc-v2" and not grpc_target:
            raise ConfigurationError("protocol 'grpc-v2' needs a grpc_target (host:port)")
        if protocol != "grpc-v2" and not url:
            raise ConfigurationError(f"protocol {protocol!r} needs a url")
        self.protocol = protocol
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(base_url=url, timeout=timeout_s, headers=dict(headers or {})) if url else None
        self._target = grpc_target
        self._metadata = tuple((metadata or {}).items())
        self._channel: grpc.aio.Channel | None = None  # opened on first use, inside the event loop
        self._stub: pb_grpc.GRPCInferenceServiceStub | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connections and the gRPC channel."""
        if self._http is not None:
            await self._http.aclose()
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None

    # -- calls ------------------------------------------------------------------------------------------------
    async def infer(
        self, model: str, request: InferRequest, version: str | None = None, headers: Mapping[str, str] | None = None
    ) -> InferResponse:
        """Run `request` through `model` over the client's protocol, with `headers` (gRPC: metadata) on this call.

        Over V1 one input is sent as `{"instances": ...}`, several as columnar `{"inputs": {name: ...}}`; the
        predictions come back as one output named "predictions", or one output per name where they are objects
        (V1 knows no versions).
        """
        if self.protocol == "grpc-v2":
            return await self._model_infer(model, request, version, headers)
        if self.protocol == "v1":
            return await self._infer_v1(model, request, version, headers)
        return await self._v2_call(f"{_v2_model_path(model, version)}/infer", request, headers)

    async def explain_v2(
        self, model: str, request: InferRequest, version: str | None = None, headers: Mapping[str, str] | None = None
    ) -> InferResponse:
        """Wharf's V2 `explain` extension: the explanation of `request` as an `InferResponse` whose outputs are the
        explanation's tensors, its method in `parameters["explainer"]`. Over gRPC (protocol 'grpc-v2') it is
        ModelInfer on `{model}-explainer`, else `POST /v2/models/{model}[/versions/{v}]/explain`."""
        if self.protocol == "grpc-v2":
            return await self._model_infer(f"{model}{EXPLAINER_SUFFIX}", request, version, headers)
        return await self._v2_call(f"{_v2_model_path(model, version)}/explain", request, headers)

    async def _model_infer(
        self, model: str, request: InferRequest, version: str | None, headers: Mapping[str, str] | None
    ) -> InferResponse:
        stub = self._grpc_stub()
        message = codec.encode_request(request, model, version)
        answer = await self._grpc_call(stub.ModelInfer, message, headers)
        return self._decoded(self._target, lambda: codec.decode_response(answer))

    async def _v2_call(self, path: str, request: InferRequest, headers: Mapping[str, str] | None) -> InferResponse:
        body, _ = v2.encode_request(request)
        answer = await self._http_call("POST", path, content=body, headers=_json(headers))
        length = answer.headers.get(v2.BINARY_HEADER)
        return self._decoded(
            answer.url, lambda: v2.decode_response(answer.content, int(length) if length is not None else None)
        )

    async def _infer_v1(
        self, model: str, request: InferRequest, version: str | None, headers: Mapping[str, str] | None
    ) -> InferResponse:
        if version is not None:
            raise InvalidInput(f"KServe V1 has no model versions; call version {version!r} over 'v2' or 'grpc-v2'")
        path = _v1_path(model, "predict")
        answer = await self._http_call("POST", path, content=v1.encode_request(request), headers=_json(headers))
        # A V1 answer decodes like a V1 request whose one key is "predictions".
        decoded = self._decoded(answer.url, lambda: v1.decode_request(answer.content, PREDICTIONS))
        return InferResponse(model_name=model, outputs=decoded.inputs)

    async def predict(self, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """KServe V1 `:predict`: `body` (e.g. `{"instances": [...]}`) in, the answer's JSON object out."""
        path = _v1_path(model, "predict")
        answer = await self._http_call("POST", path, content=v2.dumps(body), headers=_JSON)
        return self._decoded(answer.url, lambda: v2.loads_object(answer.content))

    async def explain(self, model: str, request: InferRequest, headers: Mapping[str, str] | None = None) -> Any:
        """KServe V1 `:explain` of `request` (over REST whatever the protocol): the model's explanation as JSON."""
        path = _v1_path(model, "explain")
        answer = await self._http_call("POST", path, content=v1.encode_request(request), headers=_json(headers))
        return self._decoded(answer.url, lambda: orjson.loads(answer.content))

    async def ready(self, model: str) -> bool:
        """Whether `model` is ready; a model the server does not know raises `NotFound`."""
        if self.protocol == "grpc-v2":
            stub = self._grpc_stub()
            answer = await self._grpc_call(stub.ModelReady, pb.ModelReadyRequest(name=model))
            return bool(answer.ready)
        path = f"/v1/models/{model}" if self.protocol == "v1" else f"{_v2_model_path(model, None)}/ready"
        answer = await self._http_call("GET", path, accept=(503,))
        return answer.is_success

    # -- transports -------------------------------------------------------------------------------------------
    async def _http_call(self, method: str, path: str, accept: Collection[int] = (), **kwargs: Any) -> httpx.Response:
        """The answer to an HTTP request; a non-2xx status not in `accept` is raised as its wharf error."""
        if self._http is None:
            raise ConfigurationError(f"{method} {path} is a REST call; give the client a url")
        where = f"{self._http.base_url}{path.lstrip('/')}"  # httpx ends a base URL with "/"
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await self._http.request(method, path, **kwargs)
        except (TimeoutError, httpx.TimeoutException):
            raise RequestTimeout(f"no answer from {where} within {self.timeout_s} s") from None
        except httpx.TransportError as e:
            raise ServerUnreachable(f"cannot reach {where}: {str(e) or type(e).__name__}") from None
        if answer.is_success or answer.status_code in accept:
            return answer
        raise from_http_status(answer.status_code, _error_message(answer, where))

    def _grpc_stub(self) -> pb_grpc.GRPCInferenceServiceStub:
        if self._target is None:
            raise ConfigurationError("this is a gRPC call; give the client a grpc_target")
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self._target, options=_GRPC_OPTIONS)
            self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)
        return self._stub

    async def _grpc_call(self, method: Callable[..., Any], message: Any, extra: Mapping[str, str] | None = None) -> Any:
        """The answer of a unary gRPC method (with `extra` metadata); a status other than OK is raised as its wharf
        error."""
        metadata = (*self._metadata, *extra.items()) if extra else self._metadata
        try:
            return await method(message, timeout=self.timeout_s, metadata=metadata)
        except grpc.aio.AioRpcError as e:
            raise self._grpc_error(e) from None

    def _grpc_error(self, error: grpc.aio.AioRpcError) -> WharfError:
        code, details = error.code(), error.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return RequestTimeout(f"gRPC server {self._target}: {details} (deadline {self.timeout_s} s)")
        # UNAVAILABLE on a channel that is not connected comes from gRPC itself, not from the server.
        connected = self._channel is not None and self._channel.get_state() == grpc.ChannelConnectivity.READY
        if code == grpc.StatusCode.UNAVAILABLE and not connected:
            return ServerUnreachable(f"cannot reach gRPC server {self._target}: {details}")
        return from_grpc_code(code.name, details)

    @staticmethod
    def _decoded(where: object, decode: Callable[[], T]) -> T:
        """`decode()` an answer from `where`; an answer that does not decode is the server's fault, not the caller's."""
        try:
            return decode()
        except (InvalidInput, ValueError) as e:
            raise answered(WharfError(f"malformed answer from {where}: {e}")) from None


class SyncInferenceClient:
    """`InferenceClient` for code without an event loop: the same arguments, calls and errors, each call blocking
    until its answer. It runs its own event loop, so it cannot be called from inside a running one (use
    `InferenceClient` there), and one instance serves one thread at a time."""

    def __init__(self, url: str | None = None, **options: Any) -> None:
        self._client = InferenceClient(url, **options)
        self._runner = asyncio.Runner()
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and the client's event loop (again: nothing more)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._runner.run(self._client.close())
        finally:
            self._runner.close()

    def infer(
        self, model: str, request: InferRequest, version: str | None = None, headers: Mapping[str, str] | None = None
    ) -> InferResponse:
        return self._runner.run(self._client.infer(model, request, version, headers))

    def predict(self, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._runner.run(self._client.predict(model, body))

    def explain(self, model: str, request: InferRequest) -> Any:
        return self._runner.run(self._client.explain(model, request))

    def explain_v2(self, model: str, request: InferRequest, version: str | None = None) -> InferResponse:
        return self._runner.run(self._client.explain_v2(model, request, version))

    def ready(self, model: str) -> bool:
        return self._runner.run(self._client.ready(model))


def _v2_model_path(model: str, version: str | None) -> str:
    return f"/v2/models/{model}/versions/{version}" if version else f"/v2/models/{model}"


def _json(headers: Mapping[str, str] | None) -> Mapping[str, str]:
    return {**_JSON, **headers} if headers else _JSON


def _v1_path(model: str, verb: str) -> str:
    return f"/v1/models/{model}:{verb}"


def _error_message(answer: httpx.Response, where: str) -> str:
    """The server's `{"error": ...}` message, else the body's text, else the status."""
    try:
        doc = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return doc["error"]
    return answer.text.strip() or f"HTTP {answer.status_code} from {where}"
