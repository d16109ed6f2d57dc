"""The options of the gateway's gRPC server: its message limit, keepalive enforcement and the connection limits,
accepted by a real grpc.aio server that then enforces them."""

from __future__ import annotations

import grpc
import pytest

from wharf.gateway import GatewaySettings
from wharf.gateway.grpc_proxy import grpc_server_options
from wharf.grpc_limits import GrpcLimits

pytestmark = pytest.mark.anyio


def test_the_options_carry_the_settings_and_the_limits() -> None:
    options = dict(grpc_server_options(GatewaySettings(max_request_bytes=2**20), GrpcLimits(max_connections=7)))
    assert options["grpc.max_receive_message_length"] == options["grpc.max_send_message_length"] == 2**20
    assert options["grpc.max_allowed_incoming_connections"] == 7
    assert options["grpc.http2.min_recv_ping_interval_without_data_ms"] == 300_000
    assert options["grpc.max_connection_idle_ms"] == 300_000 and "grpc.max_connection_age_ms" not in options
    aged = dict(grpc_server_options(GatewaySettings(), GrpcLimits(max_connection_age_s=60)))
    assert aged["grpc.max_connection_age_ms"] == 60_000


async def test_a_server_with_them_refuses_oversized_metadata() -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler("t.T", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.aio.server(options=grpc_server_options(GatewaySettings(), GrpcLimits(max_metadata_bytes=4096)))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/t.T/Echo")
            assert await call(b"x", timeout=5) == b"x"
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(b"x", metadata=(("x-big", "a" * 8192),), timeout=5)
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await server.stop(0)
