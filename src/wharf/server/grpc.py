"""gRPC transport: the Open Inference Protocol's `GRPCInferenceService` over the data plane, with grpc.aio.

Each method decodes its message, calls the same data-plane method REST calls and encodes the answer. Errors
become gRPC status codes in `_status` and nowhere else. A message that is not valid protobuf is answered
INVALID_ARGUMENT (grpc's own answer to a failing deserializer is UNKNOWN): the deserializers hand it on as an
`InvalidInput` for the method to raise, at the cost of one Python call and one type check per message.

ModelInfer and ModelStreamInfer on `{name}-explainer`, where no model has that name, answer model `name`'s
explanation (`DataPlane.explain_as_response`); the alias is looked up only once a model name is not found.

ModelInfer and ModelStreamInfer of a model loaded on demand that is not in memory wait for its load (as REST does:
see rest.py).

While tracing is on (`wharf.telemetry.tracing`), a ModelInfer is a SERVER span
`inference.GRPCInferenceService/ModelInfer` continuing the trace its metadata carries (attributes `rpc.system`,
`rpc.service`, `rpc.method`, `rpc.grpc.status_code`), with children `decode` and `encode` (and the model's own: see
pipeline.py); each request of a ModelStreamInfer is such a span of its own. Off, a check of `tracing.enabled`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from google.protobuf.message import DecodeError

from wharf.errors import InvalidInput, ModelNotFound, Unimplemented, WharfError
from wharf.grpc_limits import GrpcLimits, server_options
from wharf.model.base import Model
from wharf.model.context import serving
from wharf.model.repository import NotLoaded
from wharf.protocol.grpc import codec
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from wharf.server.dataplane import Answer, DataPlane
from wharf.server.metrics import ServerMetrics
from wharf.server.settings import ServerSettings
from wharf.telemetry import tracing

log = logging.getLogger(__name__)

PROTOCOL = "grpc"
EXPLAIN_PROTOCOL = "grpc-explain"  # the metrics' protocol label of explanations asked as `{name}-explainer`
SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
_RPC_ATTRIBUTES = {"rpc.system": "grpc", "rpc.service": SERVICE.full_name, "rpc.method": "ModelInfer"}
Reply = TypeVar("Reply")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Reply]]


def _status(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and message that answer `error`."""
    if isinstance(error, WharfError):
        return grpc.StatusCode[error.grpc_code], error.message
    log.error("unhandled error", exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}: {error}"


def _answering(method: Handler[Reply]) -> Handler[Reply]:
    """Wrap a unary method so that an exception ends the call with its status."""

    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Reply:
        try:
            if type(request) is InvalidInput:  # not valid protobuf (see `_parsed_or_refused`)
                raise request
            return await method(self, request, context)
        except Exception as e:
            await context.abort(*_status(e))

    return handler


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """`GRPCInferenceService` answered by the data plane."""

    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics) -> None:
        self.dataplane = dataplane
        self.metrics = metrics

    # -- health and metadata ----------------------------------------------------------------------------------
    @_answering
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    @_answering
    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    @_answering
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.dataplane.model_ready(request.name, request.version or None))

    @_answering
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        return codec.encode_server_metadata(self.dataplane.server_metadata())

    @_answering
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        return codec.encode_model_metadata(self.dataplane.model_metadata(request.name, request.version or None))

    @_answering
    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Any) -> pb.ModelConfigResponse:
        return codec.encode_model_config(self.dataplane.model_metadata(request.name, request.version or None))

    @_answering
    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Any) -> pb.ModelStatisticsResponse:
        raise Unimplemented("Wharf reports model statistics as Prometheus metrics at /metrics on its HTTP port")

    # -- inference --------------------------------------------------------------------------------------------
    @_answering
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        serving(context.invocation_metadata)
        if tracing.enabled:
            return await self._traced(request, context)
        return await self._infer(request)

    async def ModelStreamInfer(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Answer each request of the stream in order; a failed request is reported in-band and the stream goes on."""
        serving(context.invocation_metadata)
        async for request in requests:
            try:
                if type(request) is InvalidInput:
                    raise request
                infer = self._traced(request, context) if tracing.enabled else self._infer(request)
                yield pb.ModelStreamInferResponse(infer_response=await infer)
            except Exception as e:
                yield pb.ModelStreamInferResponse(error_message=_status(e)[1])

    async def _traced(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        """`_infer` in a SERVER span continuing the trace of the call's metadata."""
        metadata = context.invocation_metadata() or ()
        with tracing.server_span(f"{SERVICE.full_name}/ModelInfer", metadata, _RPC_ATTRIBUTES) as span:
            try:
                response = await self._infer(request)
            except Exception as e:
                code = grpc.StatusCode[e.grpc_code] if isinstance(e, WharfError) else grpc.StatusCode.INTERNAL
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                raise
            span.set_attribute("rpc.grpc.status_code", 0)
            return response

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        dataplane = self.dataplane
        name, version = request.model_name, request.model_version or None
        try:
            model = dataplane.model(name, version)
        except ModelNotFound as e:
            model = dataplane.explained(name, version, e)  # `{model}-explainer`
            explaining = self._answer(model, request, dataplane.explain_as_response)
            return await self.metrics.measured(model.name, EXPLAIN_PROTOCOL, explaining)
        except NotLoaded:
            model = await dataplane.loaded(name, version)
        return await self.metrics.measured(model.name, PROTOCOL, self._answer(model, request, dataplane.infer))

    @staticmethod
    async def _answer(model: Model, request: pb.ModelInferRequest, answer: Answer) -> pb.ModelInferResponse:
        """The ModelInferResponse `answer` (inference or explanation) gives to `request`."""
        if tracing.enabled:
            with tracing.span("decode"):
                decoded = codec.decode_request(request)
            response = await answer(model, decoded)
            with tracing.span("encode"):
                return codec.encode_response(response, raw=len(request.raw_input_contents) > 0)
        response = await answer(model, codec.decode_request(request))
        return codec.encode_response(response, raw=len(request.raw_input_contents) > 0)

    # -- model repository -------------------------------------------------------------------------------------
    @_answering
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Any) -> pb.RepositoryIndexResponse:
        return codec.encode_repository_index(self.dataplane.repository_index(request.ready))

    @_answering
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        name = codec.repository_model_name(request)
        await self.dataplane.load(name)
        return pb.RepositoryModelLoadResponse(model_name=name, isLoaded=True)

    @_answering
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        name = codec.repository_model_name(request)
        await self.dataplane.unload(name)
        return pb.RepositoryModelUnloadResponse(model_name=name, isUnloaded=True)


def _handlers(servicer: InferenceServicer) -> dict[str, grpc.RpcMethodHandler]:
    """The servicer's methods as gRPC handlers, as the generated `add_..._to_server` makes them, but with
    deserializers that hand a malformed message on as an error instead of raising."""
    handlers = {}
    for method in SERVICE.methods:
        make = grpc.stream_stream_rpc_method_handler if method.client_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_parsed_or_refused(getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
    return handlers


def _parsed_or_refused(message_type: Any) -> Callable[[bytes], Any]:
    parse, name = message_type.FromString, message_type.DESCRIPTOR.name

    def deserialize(raw: bytes) -> Any:
        try:
            return parse(raw)
        except DecodeError:
            return InvalidInput(f"the request is not a valid {name} message")

    return deserialize


def _options(settings: ServerSettings, reuse_port: bool) -> list[tuple[str, int]]:
    """The server's options: its settings', and the connection limits of `GrpcLimits` (read from WHARF_GRPC_*)."""
    return [
        *server_options(GrpcLimits()),
        ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
        ("grpc.max_send_message_length", settings.grpc_max_message_bytes),
        # gRPC shares ports by default; share only when several workers serve the same port on purpose.
        ("grpc.so_reuseport", int(reuse_port)),
        ("grpc.keepalive_time_ms", int(settings.grpc_keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.grpc_keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", int(settings.grpc_keepalive_permit_without_calls)),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", int(settings.grpc_min_ping_interval_s * 1000)),
    ]


async def start_grpc_server(
    dataplane: DataPlane, metrics: ServerMetrics, settings: ServerSettings, reuse_port: bool = False
) -> tuple[grpc.aio.Server, int]:
    """Bind and start the gRPC server on `settings.host`/`grpc_port` (0: any free port); returns it and its port.

    Stop it with `await server.stop(grace)`: new calls are refused at once, calls in flight get `grace` seconds.
    """
    server = grpc.aio.server(options=_options(settings, reuse_port))
    handlers = _handlers(InferenceServicer(dataplane, metrics))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    address = f"{host}:{settings.grpc_port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as e:
        raise OSError(f"cannot listen for gRPC on {address}: {e}") from None
    await server.start()
    return server, port
