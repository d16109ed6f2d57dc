"""Settings of the gateway (environment prefix `WHARF_GATEWAY_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHARF_GATEWAY_", extra="forbid")

    max_request_bytes: int = Field(64 * 2**20, ge=1024, description="largest request body (REST) or message (gRPC)")
    body_timeout_s: float = Field(30.0, gt=0, description="time allowed to receive a request body")
    stream_request_bytes: int = Field(
        1 * 2**20,
        ge=0,
        description="a request body declared larger (or chunked) that did not come with its headers is forwarded "
        "as it arrives, where nothing needs it whole; a smaller one is read whole first",
    )
    connect_timeout_s: float = Field(2.0, gt=0, description="time allowed to open a connection to a replica")
    pool_size_per_replica: int = Field(256, ge=1, description="idle keep-alive connections kept open to each replica")
    pool_idle_timeout_s: float = Field(30.0, gt=0, description="an idle pooled connection closes after this")
    keepalive_timeout_s: float = Field(75.0, gt=0, description="idle client connections close after this")
    grpc_min_ping_interval_s: float = Field(
        300.0, ge=0, description="gRPC clients pinging more often without calls in flight are disconnected"
    )
    max_queued_per_revision: int = Field(
        256, ge=1, description="requests that may wait for a revision at its concurrency limit; more get 503"
    )
    activator_queue_size: int = Field(
        1000, ge=1, description="requests that may wait for a revision to get a ready replica; more get 503"
    )
    activator_timeout_s: float = Field(
        60.0, gt=0, description="longest a request waits for a ready replica (less if the revision's timeout is)"
    )
    activator_retry_after_s: int = Field(
        1, ge=0, description="the Retry-After of a 503 from the activator (queue full, or no replica in time)"
    )
    eject_s: float = Field(5.0, ge=0, description="a replica that refused a connection is avoided this long")
    shadow_concurrency: int = Field(64, ge=1, description="mirrored requests in flight at once; more are skipped")
    payload_log_queue_size: int = Field(
        10_000, ge=1, description="payload log events that may wait to be sent; more are dropped"
    )
    payload_log_queue_bytes: int = Field(
        256 * 2**20, ge=0, description="payload bytes that may wait to be sent to their loggers; more are dropped"
    )
    payload_log_timeout_s: float = Field(5.0, gt=0, description="time allowed to send one payload event")
    feedback_ttl_s: float = Field(
        3600.0, gt=0, description="a bandit's answer may be rewarded (POST .../feedback) for this many seconds"
    )
    feedback_memory: int = Field(
        100_000, ge=1, description="request ids of bandit answers remembered for feedback; the oldest go first"
    )
    stats_window_s: float = Field(60.0, gt=0, description="statistics cover this many recent seconds")
    stats_bucket_s: float = Field(10.0, gt=0, description="the window moves forward in steps of this many seconds")
