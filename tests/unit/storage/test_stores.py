"""Dispatch of URIs to fsspec filesystems, with endpoint and timeouts set for each store."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from fsspec.implementations.http import HTTPFileSystem
from fsspec.implementations.local import LocalFileSystem

from wharf.errors import ConfigurationError
from wharf.storage.settings import StorageSettings
from wharf.storage.stores import connect, options

pytestmark = pytest.mark.timeout(10)

SETTINGS = StorageSettings(storage_timeout_s=7, s3_endpoint_url="http://127.0.0.1:9000")
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=7, sock_read=7)


@pytest.fixture(autouse=True)
def _offline_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No cloud credentials, and no probing of cloud metadata servers."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "wharftest")


def test_http_has_read_and_connect_timeouts_but_no_total() -> None:
    fs, path = connect("https://user:pw@host/m/model.joblib?sig=1", SETTINGS)
    assert isinstance(fs, HTTPFileSystem) and fs.client_kwargs == {"timeout": TIMEOUT}
    assert path == "https://user:pw@host/m/model.joblib?sig=1"


def test_s3_endpoint_timeouts_and_anonymous_without_credentials() -> None:
    assert options("s3://bucket/iris/", SETTINGS) == {
        "anon": True,
        "endpoint_url": "http://127.0.0.1:9000",
        "config_kwargs": {"connect_timeout": 7, "read_timeout": 7},
    }
    fs, path = connect("s3://bucket/iris/", SETTINGS)
    assert type(fs).__name__ == "S3FileSystem" and path == "bucket/iris"


def test_s3_uses_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert options("s3://bucket/iris/", SETTINGS)["anon"] is False


def test_gcs() -> None:
    assert options("gs://bucket/iris", SETTINGS) == {"requests_timeout": TIMEOUT}
    fs, path = connect("gs://bucket/iris/model.joblib", SETTINGS)
    assert "gs" in fs.protocol and path == "bucket/iris/model.joblib"


def test_azure() -> None:
    assert options("az://container/iris", SETTINGS) == {"connection_timeout": 7, "read_timeout": 7}
    fs, path = connect("az://container/iris/model.onnx", SETTINGS)
    assert type(fs).__name__ == "AzureBlobFileSystem" and path == "container/iris/model.onnx"


def test_local(tmp_path: Path) -> None:
    (tmp_path / "model.tgz").write_bytes(b"")
    fs, path = connect(f"file://{tmp_path}/model.tgz", SETTINGS)
    assert isinstance(fs, LocalFileSystem) and path == str(tmp_path / "model.tgz")


@pytest.mark.parametrize("uri", ["ftp://user:pw@host/m.joblib", "hdfs://nn/m", "memory://m"])
def test_unsupported_scheme(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported storage scheme") as raised:
        connect(uri, SETTINGS)
    assert "pw" not in raised.value.message
