"""Settings of the local backend (a part of the daemon's settings)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ResourceSettings(BaseSettings):
    """How replicas' `resources` are enforced on this machine (read from the daemon's environment, WHARF_*)."""

    model_config = SettingsConfigDict(env_prefix="WHARF_", extra="ignore")

    gpus: str | None = Field(
        None,
        description="the GPU device ids replicas may be given, comma-separated ('' for none); unset: the daemon's"
        " CUDA_VISIBLE_DEVICES, else the GPUs nvidia-smi lists",
    )
    cgroup: str = Field(
        "auto",
        description="a cgroup v2 directory for the replicas' cgroups, 'auto' (one in the daemon's cgroup, where it"
        " may enable the memory controller) or 'off' (memory limits by the watchdog)",
    )
    memory_check_s: float = Field(
        0.5, gt=0, description="how often the watchdog compares replicas' memory with their limits (without cgroups)"
    )


class LocalBackendSettings(BaseModel):
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    start_timeout_s: float = Field(120.0, gt=0, description="a replica must log `serving` within this, or is killed")
    health_interval_s: float = Field(1.0, gt=0, description="how often each replica is checked")
    health_timeout_s: float = Field(1.0, gt=0, description="deadline of one readiness request")
    unready_after: int = Field(3, ge=1, description="consecutive failed checks that make a ready replica unready")
    drain_timeout_s: float = Field(
        30.0, ge=0, description="drain time of a stopping replica whose env does not set WHARF_DRAIN_TIMEOUT_S"
    )
    kill_grace_s: float = Field(5.0, ge=0, description="added to the drain time before a stopping replica is killed")
    backoff_initial_s: float = Field(
        10.0, gt=0, description="a revision's replica that ends again is restarted after this (the first time at once)"
    )
    backoff_max_s: float = Field(300.0, gt=0, description="the delay doubles with each end up to this")
    backoff_reset_s: float = Field(
        600.0, gt=0, description="a replica that ends after being ready this long starts its revision's delays over"
    )
    error_lines: int = Field(20, ge=1, description="log lines kept in `last_error` when a replica ends")
    failing_after: int = Field(
        2, ge=1, description="replicas of a revision in a row that ended unready, after which its requests fail at once"
    )
    prewarm: bool = Field(True, description="fork replicas from a template process that has imported the runtime")
    prewarm_modules: tuple[str, ...] = Field(
        (
            "wharf.cli.serve", "wharf.server.app", "wharf.model.runtimes.sklearn", "numpy", "joblib", "sklearn",
            "sklearn.linear_model", "sklearn.ensemble", "sklearn.pipeline", "uvicorn", "uvloop", "grpc",
        ),
        description="what the template imports (a module that is not installed is skipped)",
    )  # fmt: skip
    prewarm_timeout_s: float = Field(
        30.0, gt=0, description="the template must answer a start (once it has imported everything) within this"
    )
    prewarm_retry_s: float = Field(60.0, ge=0, description="a template that failed is started again after this")
    standby: bool = Field(
        True, description="keep a revision scaled to zero a standby forked from the template, its model loaded"
    )
    standby_max: int = Field(4, ge=1, description="revisions that keep a standby at most (the longest at zero go)")
    standby_min_available: int = Field(
        1 << 30, ge=0, description="bytes of MemAvailable needed to start a standby (MemAvailable at its start)"
    )
