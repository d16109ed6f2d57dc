"""The monitor's settings (environment prefix `WHARF_MONITOR_`): where it listens, where and how long it keeps rows,
how it batches writes, how long half an exchange waits for its other half, and what its detectors need (the gateway
they call a predictor through, where their findings go, how many rows wait for them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.client.control import home_from_env


def _database() -> Path:
    return home_from_env() / "monitor.db"


class MonitorSettings(BaseSettings):
    """One per monitor process."""

    model_config = SettingsConfigDict(env_prefix="WHARF_MONITOR_", extra="ignore")

    enabled: bool = Field(True, description="whether `wharf up` starts the monitor")
    host: str = Field("127.0.0.1", description="the address the monitor listens on")
    port: int = Field(8003, ge=0, le=65535, description="its port (0: any free one)")
    database: Path = Field(default_factory=_database, description="the SQLite file (default WHARF_HOME/monitor.db)")
    retention_rows: int = Field(1_000_000, ge=1, description="logged rows kept per model; the oldest go first")
    retention_days: float = Field(30.0, gt=0, description="logged rows older than this are dropped")
    batch_rows: int = Field(2000, ge=1, description="logged rows written in one transaction at most")
    flush_interval_s: float = Field(0.2, gt=0, description="logged rows wait at most this long to be written")
    max_pending_rows: int = Field(
        200_000, ge=1, description="rows waiting to be written; beyond them events are refused (503) and counted"
    )
    pairing_timeout_s: float = Field(
        60.0, gt=0, description="half an exchange (a request or its response) waits this long for the other half"
    )
    max_unpaired: int = Field(10_000, ge=1, description="halves waiting at most; beyond them the oldest is dropped")
    max_event_bytes: int = Field(64 * 2**20, ge=1024, description="larger event or upload bodies get 413")
    body_timeout_s: float = Field(30.0, gt=0, description="a body must arrive within this")
    keepalive_timeout_s: float = Field(30.0, gt=0, description="idle keep-alive connections close after this")
    gateway_url: str | None = Field(
        None, description="the gateway adversarial detection calls predictors through (None: it is unavailable)"
    )
    domain: str = Field(
        "example.com", description="the gateway's domain: a predictor's host is NAME-predictor.NS.DOMAIN"
    )
    reply_url: str | None = Field(
        None, description="where detectors send their findings by default (None: findings are only counted)"
    )
    detector_queue_rows: int = Field(
        100_000,
        ge=1,
        description="logged rows waiting for each kind of detector; beyond them rows are dropped, counted",
    )
    detector_batch_rows: int = Field(1000, ge=1, description="rows a detector scores in one call at most")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
