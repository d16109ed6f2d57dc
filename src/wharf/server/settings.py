"""Settings of one model-server process (environment prefix `WHARF_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHARF_", extra="forbid")

    host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    grpc_port: int = Field(8081, ge=0, le=65535, description="0 picks a free port; -1 is not allowed")
    workers: int = Field(1, ge=1, description="processes serving the same ports")
    predict_threads: int = Field(4, ge=1, description="worker threads running synchronous model code")
    max_request_bytes: int = Field(64 * 2**20, ge=1024)
    request_timeout_s: float = Field(60.0, gt=0, description="deadline of one inference request")
    body_timeout_s: float = Field(30.0, gt=0, description="time allowed to receive a request body")
    drain_timeout_s: float = Field(30.0, ge=0, description="how long SIGTERM waits for in-flight requests")
    keepalive_timeout_s: float = Field(75.0, gt=0, description="idle HTTP keep-alive connections close after this")
    log_level: str = "INFO"
