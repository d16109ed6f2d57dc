"""Which service a gRPC request reaches through the gateway: by its host (metadata), then x-wharf-service, then
the one service serving its model; two namespaces serving a model of one name, over real gRPC channels."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import grpc
import pytest

from wharf.gateway import Gateway, Replica, Revision, RouteTable, Service
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb

from .test_grpc_proxy import INFER, infer, start_replica

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gateway_port() -> AsyncIterator[int]:
    """Model `m` served in namespaces a (revisions a-1, and a-2 behind the `latest` tag) and b; model `solo` once.
    Each replica answers with its name in the `x-replica` metadata."""
    servers, revisions = [], {}
    for name in ("a-1", "a-2", "b-1", "solo-1"):
        server, target = await start_replica(name)
        servers.append(server)
        revisions[name] = Revision(name, (Replica(name, "http://unused:1", target, True),), 5.0)
    a = Service("a", "m", "m", (("a-1", 100),), {"latest": "a-2"}, {n: revisions[n] for n in ("a-1", "a-2")})
    b = Service("b", "m", "m", (("b-1", 100),), {}, {"b-1": revisions["b-1"]}, aliases=("m-predictor",))
    solo = Service("b", "solo", "solo", (("solo-1", 100),), {}, {"solo-1": revisions["solo-1"]})
    gateway = Gateway(rng=random.Random(1))
    gateway.update(RouteTable((a, b, solo)))
    _, port = await gateway.start("127.0.0.1", 0, 0)
    yield port
    await gateway.stop(0.5)
    for server in servers:
        await server.stop(None)


async def replica_of(port: int, model: str, metadata: tuple[tuple[str, str], ...], **options: str) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=list(options.items())) as channel:
        call = channel.unary_unary(INFER)(infer(model), metadata=metadata, timeout=5)
        await call
        return dict(await call.initial_metadata())["x-replica"]


async def refusal(port: int, model: str, metadata: tuple[tuple[str, str], ...]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await replica_of(port, model, metadata)
    return raised.value.code(), raised.value.details() or ""


async def test_the_host_names_the_namespace(gateway_port: int) -> None:
    assert await replica_of(gateway_port, "m", (("host", "m.a.example.com"),)) == "a-1"
    assert await replica_of(gateway_port, "m", (("host", "M.B.example.com:80"),)) == "b-1"
    assert await replica_of(gateway_port, "m", (("host", "m-predictor.b.example.com"),)) == "b-1"
    assert await replica_of(gateway_port, "m", (("host", "latest-m.a.example.com"),)) == "a-2"
    tag_and_pin = (("host", "latest-m.a.example.com"), ("x-wharf-revision", "a-1"))
    assert await replica_of(gateway_port, "m", tag_and_pin) == "a-1"


async def test_the_host_comes_before_x_wharf_service(gateway_port: int) -> None:
    both = (("host", "m.b.example.com"), ("x-wharf-service", "a/m"))
    assert await replica_of(gateway_port, "m", both) == "b-1"


async def test_a_host_outside_the_domain_names_nothing(gateway_port: int) -> None:
    """The channel's authority (the gateway's address or another name) is never taken for a service."""
    for host in (f"127.0.0.1:{gateway_port}", "gateway.internal"):
        keyed = (("host", host), ("x-wharf-service", "b/m"))
        assert await replica_of(gateway_port, "m", keyed, **{"grpc.default_authority": host}) == "b-1"
        assert await replica_of(gateway_port, "solo", (("host", host),)) == "solo-1"


async def test_a_model_of_two_namespaces_needs_its_service_named(gateway_port: int) -> None:
    code, details = await refusal(gateway_port, "m", ())
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "several InferenceServices (a/m, b/m)" in details and "m.a.example.com" in details, details
    assert await replica_of(gateway_port, "solo", ()) == "solo-1"  # a unique model name still routes


async def test_a_host_of_the_domain_that_names_nothing_is_not_found(gateway_port: int) -> None:
    code, details = await refusal(gateway_port, "m", (("host", "nope.a.example.com"),))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, "no InferenceService for host 'nope.a.example.com'")


async def test_model_calls_other_than_infer_are_routed_by_host_too(gateway_port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway_port}") as channel:
        ready = channel.unary_unary("/inference.GRPCInferenceService/ModelReady")
        request = pb.ModelReadyRequest(name="m").SerializeToString()
        call = ready(request, metadata=(("host", "m.b.example.com"),), timeout=5)
        await call
        assert dict(await call.initial_metadata())["x-replica"] == "b-1"


async def test_model_infer_on_model_explainer_reaches_the_services_explainer() -> None:
    """`{model}-explainer` reaches the explainer by model name alone, and by the service's host or x-wharf-service
    (where the service's other requests go to its predictor)."""
    servers, revisions = [], {}
    for name in ("m-1", "m-explainer-1"):
        server, target = await start_replica(name)
        servers.append(server)
        revisions[name] = Revision(name, (Replica(name, "http://unused:1", target, True),), 5.0)
    predictor = Service("a", "m", "m", (("m-1", 100),), {}, {"m-1": revisions["m-1"]}, explainer="a/m-explainer")
    explainer = Service(
        "a", "m-explainer", "m-explainer", (("m-explainer-1", 100),), {}, {"m-explainer-1": revisions["m-explainer-1"]}
    )
    gateway = Gateway(rng=random.Random(1))
    gateway.update(RouteTable((predictor, explainer)))
    _, port = await gateway.start("127.0.0.1", 0, 0)
    try:
        assert await replica_of(port, "m-explainer", ()) == "m-explainer-1"
        assert await replica_of(port, "m-explainer", (("host", "m.a.example.com"),)) == "m-explainer-1"
        assert await replica_of(port, "m-explainer", (("x-wharf-service", "a/m"),)) == "m-explainer-1"
        assert await replica_of(port, "m", (("host", "m.a.example.com"),)) == "m-1"
    finally:
        await gateway.stop(0.5)
        for server in servers:
            await server.stop(None)
