"""gRPC proxy: forwards the unary RPCs of `inference.GRPCInferenceService` to replicas as raw bytes.

Which service a request is for, in this order:
1. its host, given as `host` metadata, when that names a service of the domain (`NAME.NAMESPACE.example.com`, a
   tag host such as `latest-NAME...` pinning its revision, or `NAME-predictor...`), as KServe's ingress routes
   by `:authority`. grpcio gives a Python server no access to the `:authority` pseudo-header itself (the channel's
   target, `127.0.0.1:8001`, by default), so clients send the host as metadata: `metadata=[("host", ...)]`,
   tritonclient's `headers={"host": ...}`, `grpcurl -H "host: ..."`. A host outside the domain (an address, the
   gateway's own name) names nothing and routing goes on; one within it that names no service is NOT_FOUND.
2. the `x-wharf-service: namespace/name` metadata;
3. the model the request names, when exactly one service (of any namespace) serves it; when several do, the
   request is INVALID_ARGUMENT naming them, so a second namespace serving a model of the same name never takes a
   client's requests silently: clients of either name theirs by host or x-wharf-service.
A ModelInfer naming model `{model}-explainer` by the host or x-wharf-service of a service with an explainer goes to
the explainer (the model is read for that only when the service has one). `x-wharf-revision` pins a revision;
`x-wharf-caller` is counted on its caller's edge (edges.py) and not sent on. ServerLive, ServerReady and
ServerMetadata without x-wharf-service are answered by the gateway itself. Request metadata goes to the replica,
the deadline with it; the replica's status, details and metadata come back unchanged. One channel per replica
target.

The repository RPCs (RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload) are control operations: the
gateway answers them PERMISSION_DENIED itself, so that no client of the gateway can unload a service's model.

A ModelInfer to a service whose rollout is a bandit (with the gateway's `BanditLedger`) gets a request id when its
metadata has none, is counted as a pull of the revision that answers, and its answer's initial metadata carries
`x-request-id` and `x-wharf-arm` (the revision), for a reward posted to the service's REST `/feedback`.

`ModelStreamInfer` is forwarded request by request: each request of the client's stream is routed on its own
(so requests for different models may share a stream) and sent to a replica as a `ModelInfer`; the answers come
back on the stream in order, and a failed request is reported in the stream (`error_message`), which goes on.

While tracing is on (`wharf.telemetry.tracing`), each request forwarded (each of a stream's too) is a SERVER span
`inference.GRPCInferenceService/{method}` continuing the trace of its metadata (attributes `rpc.system`,
`rpc.service`, `rpc.method`, `rpc.grpc.status_code`, and once routed `wharf.service`, `wharf.revision`), and the
metadata sent to the replica carries the current span's `traceparent` in place of the client's. Off, a check of
`tracing.enabled` per request and per send.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import NamedTuple

import grpc
from google.protobuf.message import DecodeError

from wharf import __version__
from wharf.errors import InvalidInput, NotFound, WharfError
from wharf.gateway.api_keys import presented_key, require_key
from wharf.gateway.codes import GrpcCodes
from wharf.gateway.dispatch import ConnectFailed, Dispatcher
from wharf.gateway.edges import CALLER_HEADER
from wharf.gateway.bandits import ARM, BanditLedger, service_bandit
from wharf.gateway.payloads import REQUEST_ID, log_grpc_exchange
from wharf.gateway.proxy import REPOSITORY_REFUSED
from wharf.gateway.router import Router
from wharf.gateway.routes import Replica, Service
from wharf.gateway.settings import GatewaySettings
from wharf.grpc_limits import GrpcLimits, Options, server_options
from wharf.logger import PayloadLogger
from wharf.protocol.explanation import EXPLAINER_SUFFIX
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.telemetry import tracing

SERVICE = "inference.GRPCInferenceService"
STREAM = "ModelStreamInfer"
INFER_METHOD = f"/{SERVICE}/ModelInfer"
HOST_KEY = "host"
SERVICE_KEY = "x-wharf-service"
REVISION_KEY = "x-wharf-revision"
Metadata = Sequence[tuple[str, str | bytes]]

# The model a request names, read with the generated message classes (RPCs without one need x-wharf-service).
_MODEL_OF: dict[str, Callable[[bytes], str]] = {
    "ModelInfer": lambda raw: pb.ModelInferRequest.FromString(raw).model_name,
    "ModelReady": lambda raw: pb.ModelReadyRequest.FromString(raw).name,
    "ModelMetadata": lambda raw: pb.ModelMetadataRequest.FromString(raw).name,
    "ModelConfig": lambda raw: pb.ModelConfigRequest.FromString(raw).name,
    "ModelStatistics": lambda raw: pb.ModelStatisticsRequest.FromString(raw).name,
}


def _model(name: str, request: bytes) -> str:
    """The model that request `request` of RPC `name` names."""
    model_of = _MODEL_OF.get(name)
    if model_of is None:
        raise NotFound(
            f"{name} names no model: say which InferenceService by its host (host metadata) or in the"
            f" {SERVICE_KEY} metadata"
        )
    try:
        return model_of(request)
    except DecodeError:
        raise InvalidInput(f"{name} request is not a valid protobuf message") from None


_CONTROL_OPERATIONS = frozenset({"RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"})
# What the gateway answers itself to the server-wide RPCs that name no InferenceService (health checks of clients
# such as tritonclient's `is_server_live`): it is up, and serves no model of its own.
_GATEWAY_ANSWERS = {
    "ServerLive": pb.ServerLiveResponse(live=True).SerializeToString(),
    "ServerReady": pb.ServerReadyResponse(ready=True).SerializeToString(),
    "ServerMetadata": pb.ServerMetadataResponse(name="wharf-gateway", version=__version__).SerializeToString(),
}
# Status codes that count as an error of the revision (a fault on its side, not the client's).
_REPLICA_FAULTS = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE}
    | {grpc.StatusCode.DATA_LOSS, grpc.StatusCode.DEADLINE_EXCEEDED}
)
# Metadata that gRPC itself sets on each hop.
_RESERVED = ("grpc-", ":")
_HOP_KEYS = frozenset({"user-agent", "content-type", "te", "host", CALLER_HEADER})  # the caller: counted, not sent


class _Reply(NamedTuple):
    """What a replica answered: the response bytes (None on error), status and both sets of metadata."""

    body: bytes | None
    code: grpc.StatusCode
    details: str
    initial: Metadata
    trailing: Metadata


def _numbered(metadata: Metadata, number: int) -> Metadata:
    """A streamed request's metadata: the stream's `x-request-id` (if any) followed by the request's number, so
    that each request and answer of the stream is told apart (their payload log events are)."""
    return [(k, f"{v}-{number}" if k == REQUEST_ID and isinstance(v, str) else v) for k, v in metadata]


_CODES: GrpcCodes[_Reply] = GrpcCodes(lambda reply: reply.code, _REPLICA_FAULTS)


def _pinned_and_caller(metadata: Metadata) -> tuple[str | bytes | None, str | bytes | None]:
    """The revision a request pins (`x-wharf-revision`, the first) and the caller it names (`x-wharf-caller`)."""
    pinned = caller = None
    for k, v in metadata:
        if k == REVISION_KEY and pinned is None:
            pinned = v
        elif k == CALLER_HEADER:
            caller = v
    return pinned, caller


def _with_request_id(metadata: tuple[tuple[str, str | bytes], ...]) -> tuple[tuple[tuple[str, str | bytes], ...], str]:
    """`metadata` with an `x-request-id` (one made where it has none, or a binary one), and that id."""
    for key, value in metadata:
        if key == REQUEST_ID and isinstance(value, str):
            return metadata, value
    made = uuid.uuid4().hex
    return (*metadata, (REQUEST_ID, made)), made


def _passed_on(metadata: Metadata | None) -> tuple[tuple[str, str | bytes], ...]:
    return tuple((k, v) for k, v in metadata or () if not k.startswith(_RESERVED) and k not in _HOP_KEYS)


def grpc_server_options(settings: GatewaySettings, limits: GrpcLimits | None = None) -> Options:
    """The options of the gateway's gRPC server: its message size limit, keepalive ping enforcement and the
    connection limits (`limits`, else `GrpcLimits()` from WHARF_GRPC_*)."""
    return [
        *server_options(limits or GrpcLimits()),
        ("grpc.max_receive_message_length", settings.max_request_bytes),
        ("grpc.max_send_message_length", settings.max_request_bytes),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", int(settings.grpc_min_ping_interval_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 0),
    ]


class GrpcUpstream:
    """One grpc.aio channel per replica target, kept while the target is in the route table."""

    def __init__(self, max_message_bytes: int) -> None:
        self._options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def retain(self, targets: set[str], grace_s: float) -> None:
        """Close (after `grace_s`) the channels to targets not in `targets`."""
        for target in [t for t in self._channels if t not in targets]:
            task = asyncio.get_running_loop().create_task(self._channels.pop(target).close(grace_s))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        await asyncio.gather(*self._closing, *(c.close(None) for c in self._channels.values()))
        self._channels.clear()

    async def call(
        self, replica: Replica, method: str, request: bytes, metadata: Metadata, timeout: float | None
    ) -> _Reply:
        """`method` on `replica`; ConnectFailed if the replica could not be reached at all."""
        channel = self._channels.get(replica.grpc_target)
        if channel is None:
            channel = self._channels[replica.grpc_target] = grpc.aio.insecure_channel(
                replica.grpc_target, options=self._options
            )
        call = channel.unary_unary(method)(request, metadata=metadata, timeout=timeout)
        try:
            body = await call
        except grpc.aio.AioRpcError as e:
            if e.code() is grpc.StatusCode.UNAVAILABLE and _unreachable(channel):
                raise ConnectFailed(e.details() or "unavailable") from e
            return _Reply(None, e.code(), e.details() or "", e.initial_metadata(), e.trailing_metadata())
        return _Reply(body, grpc.StatusCode.OK, "", await call.initial_metadata(), await call.trailing_metadata())


async def _refuse_control_operation(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, REPOSITORY_REFUSED)


def _unreachable(channel: grpc.aio.Channel) -> bool:
    """Whether the channel failed to connect (as opposed to losing a connection the call went out on)."""
    return channel.get_state() is grpc.ChannelConnectivity.TRANSIENT_FAILURE


class GrpcProxy(grpc.GenericRpcHandler):
    """The generic handler of the gateway's gRPC server: every method of `GRPCInferenceService`."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        upstream: GrpcUpstream,
        payloads: PayloadLogger,
        bandits: BanditLedger | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._upstream = upstream
        self._payloads = payloads
        self._bandits = bandits
        methods = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods
        self._handlers = {f"/{SERVICE}/{m.name}": self._handler(m.name) for m in methods}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(handler_call_details.method)  # None: UNIMPLEMENTED

    def _handler(self, name: str) -> grpc.RpcMethodHandler:
        if name == STREAM:
            return grpc.stream_stream_rpc_method_handler(self._stream)
        if name in _CONTROL_OPERATIONS:
            return grpc.unary_unary_rpc_method_handler(_refuse_control_operation)
        method = f"/{SERVICE}/{name}"

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self._forward(method, name, request, context)

        return grpc.unary_unary_rpc_method_handler(forward)

    async def _traced(
        self, method: str, name: str, request: bytes, metadata: Metadata, timeout: float | None
    ) -> _Reply:
        """`_send` in a SERVER span continuing the trace of the request's metadata."""
        attributes = {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": name}
        with tracing.server_span(f"{SERVICE}/{name}", metadata, attributes) as span:
            try:
                reply = await self._send(method, name, request, metadata, timeout)
            except WharfError as e:
                span.set_attribute("rpc.grpc.status_code", grpc.StatusCode[e.grpc_code].value[0])
                raise
            span.set_attribute("rpc.grpc.status_code", reply.code.value[0])
            return reply

    async def _send(self, method: str, name: str, request: bytes, metadata: Metadata, timeout: float | None) -> _Reply:
        """Route one request and forward it (mirroring it to a shadow revision when one is drawn)."""
        router = self._dispatcher.router
        service, tagged = self._service(router, name, request, metadata)
        if service.api_keys:
            require_key(service, presented_key((k, v) for k, v in metadata if isinstance(v, str)))
        pinned, caller = _pinned_and_caller(metadata)
        revision = router.revision(service, pinned if isinstance(pinned, str) else tagged)
        if revision.placement is not None:  # multi-model: to a replica with the model loaded (model_routing.py)
            revision = revision.placement.revision_for(_model(name, request) if name in _MODEL_OF else None, revision)
        source = caller if isinstance(caller, str) else None
        outgoing = _passed_on(metadata)
        log_answer = request_id = None
        if service.bandit and method == INFER_METHOD and self._bandits is not None:
            outgoing, request_id = _with_request_id(outgoing)
        if method == INFER_METHOD:  # the payloads; the other methods ask about models and servers
            outgoing, log_answer = log_grpc_exchange(self._payloads, revision.logger, outgoing, request)
        upstream = self._upstream

        if tracing.enabled:
            tracing.annotate({"wharf.service": service.key, "wharf.revision": revision.name})

        def send(replica: Replica) -> Awaitable[_Reply]:
            sent = tracing.outgoing_metadata(outgoing) if tracing.enabled else outgoing  # the shadow's span too
            return upstream.call(replica, method, request, sent, timeout)

        self._dispatcher.mirror(router, service, send, _CODES, source)
        try:
            reply = await self._dispatcher.forward(revision, send, _CODES, source=source)
        except WharfError as e:  # the gateway's own answer (no ready replica, timeout)
            if log_answer is not None:
                log_answer(e.grpc_code, None, e.message)
            raise
        if log_answer is not None:
            log_answer(reply.code.name, reply.body, reply.details)
        if request_id is not None:
            assert self._bandits is not None
            key = service_bandit(service.namespace, service.name)
            self._bandits.route(request_id, key, revision.name, service.namespace, service.model)
            reply = reply._replace(initial=(*reply.initial, (REQUEST_ID, request_id), (ARM, revision.name)))
        return reply

    async def _stream(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """ModelStreamInfer: each request forwarded as a ModelInfer, the answers (or errors) in order."""
        metadata = context.invocation_metadata() or ()
        number = 0
        async for request in requests:
            number += 1
            try:
                each = _numbered(metadata, number)
                forward = self._traced if tracing.enabled else self._send
                reply = await forward(INFER_METHOD, "ModelInfer", request, each, context.time_remaining())
            except WharfError as e:
                yield pb.ModelStreamInferResponse(error_message=e.message).SerializeToString()
                continue
            if reply.body is None:
                yield pb.ModelStreamInferResponse(error_message=reply.details or reply.code.name).SerializeToString()
            else:
                answer = pb.ModelInferResponse.FromString(reply.body)
                yield pb.ModelStreamInferResponse(infer_response=answer).SerializeToString()

    async def _forward(self, method: str, name: str, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = context.invocation_metadata() or ()
        if name in _GATEWAY_ANSWERS and not any(k == SERVICE_KEY for k, _ in metadata):
            return _GATEWAY_ANSWERS[name]  # about the gateway itself: no InferenceService named
        try:
            forward = self._traced if tracing.enabled else self._send
            reply = await forward(method, name, request, metadata, context.time_remaining())
        except WharfError as e:
            await context.abort(grpc.StatusCode[e.grpc_code], e.message)
        initial = _passed_on(reply.initial)
        if initial:
            await context.send_initial_metadata(initial)
        trailing = _passed_on(reply.trailing)
        if reply.body is None:
            await context.abort(reply.code, reply.details, trailing)
        if trailing:
            context.set_trailing_metadata(trailing)
        return reply.body

    @staticmethod
    def _service(router: Router, name: str, request: bytes, metadata: Metadata) -> tuple[Service, str | None]:
        """The service a request is for, with the revision a tag host pins (see the module docstring)."""
        host = key = None
        for k, v in metadata:
            if k == HOST_KEY:
                host = v
            elif k == SERVICE_KEY:
                key = v
        found = router.host_route(host) if isinstance(host, str) else None
        if found is None and isinstance(key, str):
            found = router.service(key), None
        if found is not None:
            service = found[0]
            if service.explainer is not None and name == "ModelInfer":
                if _model(name, request).endswith(EXPLAINER_SUFFIX):
                    return router.service(service.explainer), None
            return found
        return router.service_of_model(_model(name, request)), None
