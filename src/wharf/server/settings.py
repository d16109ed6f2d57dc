"""Settings of one model-server process (environment prefix `WHARF_`)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.model.memory import parse_bytes


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHARF_", extra="forbid")

    host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    grpc_port: int = Field(8081, ge=0, le=65535, description="0 picks a free port; -1 is not allowed")
    workers: int = Field(1, ge=1, description="processes serving the same ports")
    predict_threads: int = Field(1, ge=1, description="worker threads per model running its synchronous code")
    max_queued_requests: int = Field(1024, ge=1, description="requests a model may have waiting; more get 503")
    max_queued_explanations: int = Field(
        8, ge=0, description="explanations that may wait for an explanation thread; more get 503"
    )
    max_batch_size: int = Field(1, ge=1, description="rows merged into one predict call; 1 turns batching off")
    max_batch_latency_ms: float = Field(
        2.0, ge=0, description="while requests arrive together, how long a batch may wait to fill up"
    )
    max_request_bytes: int = Field(64 * 2**20, ge=1024)
    request_timeout_s: float = Field(60.0, gt=0, description="deadline of one inference request")
    body_timeout_s: float = Field(30.0, gt=0, description="time allowed to receive a request body")
    drain_timeout_s: float = Field(30.0, ge=0, description="how long SIGTERM waits for in-flight requests")
    keepalive_timeout_s: float = Field(75.0, gt=0, description="idle HTTP keep-alive connections close after this")
    grpc_max_message_bytes: int = Field(64 * 2**20, ge=1024, description="largest gRPC message received or sent")
    grpc_keepalive_time_s: float = Field(
        7200.0, gt=0, description="the gRPC server pings a quiet connection after this"
    )
    grpc_keepalive_timeout_s: float = Field(20.0, gt=0, description="a connection whose ping goes unanswered closes")
    grpc_keepalive_permit_without_calls: bool = Field(False, description="keepalive pings also without calls in flight")
    grpc_min_ping_interval_s: float = Field(300.0, ge=0, description="clients pinging more often are disconnected")
    log_level: str = "INFO"
    # What `wharf up` tells a replica of itself, for its spans' resource (`wharf.telemetry.tracing`).
    service: str = Field("", description="namespace/name of the InferenceService it serves")
    component: str = Field("", description="predictor, transformer or explainer")
    revision: str = Field("", description="the revision it is a replica of")
    replica: str = Field("", description="its replica id")
    repository_api: bool = Field(
        True,
        description="on: clients may load, unload and list models (/v2/repository/*, gRPC Repository*); off: those "
        "answer 403 / PERMISSION_DENIED, as Triton's --model-control-mode=none",
    )
    memory_budget: int | None = Field(
        None,
        description="bytes (or a quantity such as 512Mi) the loaded models may hold; loading more evicts the least "
        "recently used idle ones; unset: no limit",
    )

    @field_validator("memory_budget", mode="before")
    @classmethod
    def _quantity(cls, value: object) -> int | None:
        if value is None or value == "":
            return None
        if isinstance(value, int | str):
            return parse_bytes(value, "memory_budget")
        raise ValueError(f"memory_budget: expected bytes or a quantity such as 512Mi, got {value!r}")
