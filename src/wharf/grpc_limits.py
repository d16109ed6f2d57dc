"""Connection limits of Wharf's gRPC servers (the model server's and the gateway's), as grpc.aio server options.

gRPC's own defaults let one client hold a server's resources without end: unlimited connections and streams per
connection, idle connections kept for ever, two minutes for a connection's handshake. These limits bound them;
message sizes and keepalive pings are each server's own settings.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Options = list[tuple[str, int]]


class GrpcLimits(BaseSettings):
    """Limits of every gRPC listener of a process (environment prefix `WHARF_GRPC_`)."""

    model_config = SettingsConfigDict(env_prefix="WHARF_GRPC_", extra="forbid")

    max_connections: int = Field(1024, ge=1, description="open connections; more are refused until some close")
    max_concurrent_streams: int = Field(
        1024, ge=1, description="calls in flight on one connection; a client's further calls wait for one to end"
    )
    max_connection_idle_s: float = Field(
        300.0, gt=0, description="a connection without calls for this long is closed (clients reconnect as needed)"
    )
    max_connection_age_s: float | None = Field(
        None, gt=0, description="connections are closed (gracefully) after this long; None: never"
    )
    max_connection_age_grace_s: float = Field(
        30.0, ge=0, description="calls in flight on a connection closed for its age get this long to finish"
    )
    handshake_timeout_s: float = Field(10.0, gt=0, description="a new connection must complete its handshake within")
    max_metadata_bytes: int = Field(16 * 2**10, ge=1024, description="larger request metadata (headers) is refused")
    max_ping_strikes: int = Field(
        2, ge=0, description="pings more frequent than the server allows, before it closes the connection"
    )


def server_options(limits: GrpcLimits) -> Options:
    """The grpc.aio server options that enforce `limits`."""
    options = [
        ("grpc.max_allowed_incoming_connections", limits.max_connections),
        ("grpc.max_concurrent_streams", limits.max_concurrent_streams),
        ("grpc.max_connection_idle_ms", _ms(limits.max_connection_idle_s)),
        ("grpc.max_connection_age_grace_ms", _ms(limits.max_connection_age_grace_s)),
        ("grpc.server_handshake_timeout_ms", _ms(limits.handshake_timeout_s)),
        ("grpc.max_metadata_size", limits.max_metadata_bytes),  # the soft limit: refused with some probability
        ("grpc.absolute_max_metadata_size", limits.max_metadata_bytes),  # the hard one: always refused
        ("grpc.http2.max_ping_strikes", limits.max_ping_strikes),
    ]
    if limits.max_connection_age_s is not None:
        options.append(("grpc.max_connection_age_ms", _ms(limits.max_connection_age_s)))
    return options


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
