"""Storage settings from the environment, including the S3 variables KServe users set."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.storage.settings import StorageSettings

pytestmark = pytest.mark.timeout(10)

_S3_VARIABLES = ("WHARF_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "S3_ENDPOINT", "S3_USE_HTTPS", "WHARF_S3_USE_HTTPS")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*_S3_VARIABLES, "WHARF_STORAGE_CACHE_DIR", "WHARF_PVC_ROOT", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = StorageSettings()
    assert settings.storage_cache_dir == tmp_path / ".cache" / "wharf" / "models"
    assert settings.storage_timeout_s == 60
    assert settings.pvc_root is None and settings.s3_endpoint_url is None


def test_from_wharf_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_STORAGE_CACHE_DIR", "/var/cache/models")
    monkeypatch.setenv("WHARF_STORAGE_TIMEOUT_S", "5")
    monkeypatch.setenv("WHARF_PVC_ROOT", "/mnt/pvc")
    monkeypatch.setenv("WHARF_S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://ignored:1")
    settings = StorageSettings()
    assert settings.storage_cache_dir == Path("/var/cache/models")
    assert settings.storage_timeout_s == 5
    assert settings.pvc_root == Path("/mnt/pvc")
    assert settings.s3_endpoint_url == "http://minio:9000"


def test_endpoint_from_aws_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.com")
    assert StorageSettings().s3_endpoint_url == "https://s3.example.com"


@pytest.mark.parametrize(("use_https", "expected"), [("0", "http://minio:9000"), ("1", "https://minio:9000")])
def test_kserve_endpoint_without_scheme(monkeypatch: pytest.MonkeyPatch, use_https: str, expected: str) -> None:
    monkeypatch.setenv("S3_ENDPOINT", "minio:9000")
    monkeypatch.setenv("S3_USE_HTTPS", use_https)
    assert StorageSettings().s3_endpoint_url == expected
