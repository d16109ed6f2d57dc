"""Settings of the monitor's scheduled metrics (environment prefix `WHARF_MONITOR_METRICS_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHARF_MONITOR_METRICS_", extra="forbid")

    interval_s: float = Field(
        5.0, gt=0, description="every scheduled metric is recomputed this often (TrustyAI's metrics schedule)"
    )
