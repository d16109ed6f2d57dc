"""Settings of artifact storage (environment prefix `WHARF_`, plus the S3 variables KServe users already set)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "wharf" / "models"


class StorageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHARF_", extra="ignore", validate_by_name=True)

    storage_cache_dir: Path = Field(
        default_factory=_default_cache_dir, description="where fetched artifacts are kept, one directory per URI"
    )
    storage_timeout_s: float = Field(
        60.0, gt=0, description="longest wait for a connection or for the next bytes of a response"
    )
    storage_max_unpacked_bytes: int = Field(
        8 * 2**30, ge=1, description="an archive that unpacks to more than this is refused (an archive bomb)"
    )
    storage_max_unpacked_files: int = Field(10_000, ge=1, description="an archive of more members is refused")
    storage_max_unpack_ratio: float = Field(
        100.0,
        gt=0,
        description="an archive that unpacks to more than this many times its size (past 64 MiB) is refused",
    )
    pvc_root: Path | None = Field(None, description="directory where `pvc://NAME/PATH` is NAME/PATH")
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("WHARF_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "S3_ENDPOINT"),
        description="an S3-compatible store (MinIO, Ceph, ...) instead of AWS",
    )
    s3_use_https: bool = Field(
        True,
        validation_alias=AliasChoices("WHARF_S3_USE_HTTPS", "S3_USE_HTTPS"),
        description="the scheme for an endpoint given as bare host:port (as KServe's S3_ENDPOINT is)",
    )

    @model_validator(mode="after")
    def _endpoint_scheme(self) -> StorageSettings:
        if self.s3_endpoint_url and "://" not in self.s3_endpoint_url:
            scheme = "https" if self.s3_use_https else "http"
            self.s3_endpoint_url = f"{scheme}://{self.s3_endpoint_url}"
        return self
