"""The gRPC proxy between a raw-bytes client and scripted in-process replicas."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from wharf.gateway import Gateway, Replica, Revision, RouteTable, Service
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb

pytestmark = pytest.mark.anyio

INFER = "/inference.GRPCInferenceService/ModelInfer"


class ScriptedReplica(grpc.GenericRpcHandler):
    """Answers every unary method with the request bytes; shows what it received in its metadata."""

    def __init__(self, name: str) -> None:
        self.name = name

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            received = {k: v for k, v in context.invocation_metadata() if k.startswith("x-")}
            await context.send_initial_metadata((("x-replica", self.name),))
            if pb.ModelInferRequest.FromString(request).id == "fail":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input", (("x-why", "fail"),))
            remaining = context.time_remaining()
            context.set_trailing_metadata(
                (("x-seen", ",".join(sorted(received))), ("x-deadline", "none" if remaining is None else "set"))
            )
            return request

        return grpc.unary_unary_rpc_method_handler(echo)


async def start_replica(name: str) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((ScriptedReplica(name),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@dataclass
class Running:
    gateway: Gateway
    channel: grpc.aio.Channel


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    """A gateway in front of replicas `first` (and a dead one) for iris-1, `second` for iris-2 (also the shadow),
    and cold-1, whose one replica never gets ready (requests wait its timeout, 0.2 s, in the activator)."""
    first, first_target = await start_replica("first")
    second, second_target = await start_replica("second")
    dead = Replica("dead", "http://127.0.0.1:9", "127.0.0.1:9", True)  # nothing listens on port 9 (discard)
    replicas = (dead, Replica("first", "http://unused:1", first_target, True))
    revisions = {
        "iris-1": Revision("iris-1", replicas, 5.0),
        "iris-2": Revision("iris-2", (Replica("second", "http://unused:2", second_target, True),), 5.0),
        "cold-1": Revision("cold-1", (Replica("cold", "http://unused:3", "127.0.0.1:9", False),), 0.2),
    }
    iris = {name: revisions[name] for name in ("iris-1", "iris-2")}
    table = RouteTable(
        (
            Service("default", "iris", "iris", (("iris-1", 100),), {}, iris, shadow=("iris-2", 100)),
            Service("default", "cold", "cold", (("cold-1", 100),), {}, {"cold-1": revisions["cold-1"]}),
        )
    )
    gateway = Gateway(rng=random.Random(1))  # its draws send the first request to the dead replica first
    gateway.update(table)
    _, grpc_port = await gateway.start("127.0.0.1", 0, 0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        yield Running(gateway, channel)
    await gateway.stop(0.5)
    await first.stop(None)
    await second.stop(None)


def infer(model: str, id: str = "") -> bytes:
    return pb.ModelInferRequest(model_name=model, id=id).SerializeToString()


async def test_bytes_metadata_and_deadline_pass_through(running: Running) -> None:
    channel = running.channel
    call = channel.unary_unary(INFER)(infer("iris"), metadata=(("x-trace", "t1"),), timeout=5)
    assert await call == infer("iris")
    assert ("x-replica", "first") in tuple(await call.initial_metadata())  # after the dead replica refused
    trailing = dict(await call.trailing_metadata())
    assert (trailing["x-seen"], trailing["x-deadline"]) == ("x-trace", "set")
    for _ in range(100):  # the shadow's copy, which nobody waits for
        if running.gateway.stats()["iris-2"].requests:
            break
        await asyncio.sleep(0.01)
    stats = running.gateway.stats()
    assert (stats["iris-1"].requests, stats["iris-2"].requests, stats["iris-2"].errors) == (1, 1, 0)


async def test_service_and_revision_from_metadata(running: Running) -> None:
    channel = running.channel
    metadata = (("x-wharf-service", "default/iris"), ("x-wharf-revision", "iris-2"))
    call = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", metadata=metadata, timeout=5)
    assert await call == b""
    assert ("x-replica", "second") in tuple(await call.initial_metadata())


async def test_replica_status_passes_through(running: Running) -> None:
    channel = running.channel
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await channel.unary_unary(INFER)(infer("iris", id="fail"), timeout=5)
    assert (raised.value.code(), raised.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "bad input")
    assert ("x-why", "fail") in tuple(raised.value.trailing_metadata())


@pytest.mark.parametrize(
    "method, request_bytes, metadata, code, details",
    [
        (INFER, infer("nope"), (), grpc.StatusCode.NOT_FOUND, "no InferenceService serves model 'nope'"),
        (INFER, infer("cold"), (), grpc.StatusCode.UNAVAILABLE, "none became ready within 0.2 s"),
        (INFER, b"\xff\xff", (), grpc.StatusCode.INVALID_ARGUMENT, "ModelInfer request is not a valid protobuf"),
        ("/inference.GRPCInferenceService/RepositoryIndex", b"", (), grpc.StatusCode.PERMISSION_DENIED, "control"),
        (INFER, infer("iris"), (("x-wharf-service", "x/y"),), grpc.StatusCode.NOT_FOUND, "no InferenceService 'x/y'"),
        ("/other.Service/Call", b"", (), grpc.StatusCode.UNIMPLEMENTED, ""),
        ("/inference.GRPCInferenceService/MadeUp", b"", (), grpc.StatusCode.UNIMPLEMENTED, ""),
    ],
)
async def test_gateway_statuses(
    running: Running, method: str, request_bytes: bytes, metadata: tuple, code: grpc.StatusCode, details: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.channel.unary_unary(method)(request_bytes, metadata=metadata, timeout=5)
    assert raised.value.code() == code
    assert details in (raised.value.details() or "")


async def test_a_stream_is_forwarded_request_by_request_and_a_failure_stays_in_the_stream(running: Running) -> None:
    stream = running.channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
    requests = [infer("iris", id="a"), infer("nope", id="b"), infer("iris", id="fail"), infer("iris", id="c")]
    answers = [pb.ModelStreamInferResponse.FromString(raw) async for raw in stream(iter(requests), timeout=5)]
    assert [a.infer_response.id for a in answers] == ["a", "", "", "c"]
    assert answers[0].infer_response.model_name == "iris" and not answers[0].error_message
    assert answers[1].error_message == "no InferenceService serves model 'nope'"
    assert answers[2].error_message == "bad input"
