"""Fetching artifacts from real servers: an HTTP server in a thread, and moto's S3 server as a process."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import pytest

from tests.integration.conftest import RunningServer
from wharf.errors import ModelLoadError
from wharf.storage import StorageSettings, resolve

pytestmark = pytest.mark.timeout(30)

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [5.0, 2.0, 3.5, 1.0], [7.7, 2.8, 6.7, 2.0]]  # one of each species
IRIS_LABELS = [0, 1, 2]
SECRETS = ("s3cr3t-pass", "sig-t0ken")


# -- an HTTP server that counts downloads and can fail on purpose --------------------------------------------


@dataclass
class Resource:
    body: bytes
    etag: str | None = '"1"'  # None: no header telling versions apart
    fault: str | None = None  # "error": 500; "drop": the connection closes mid-body; "stall": the body never comes


@dataclass
class ArtifactServer:
    port: int = 0
    resources: dict[str, Resource] = field(default_factory=dict)
    downloads: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(state: ArtifactServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def _answer(self, with_body: bool) -> None:
            path = urlsplit(self.path).path
            resource = state.resources.get(path)
            if resource is None or resource.fault == "error":
                self.send_error(404 if resource is None else 500)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(resource.body)))
            if resource.etag is not None:
                self.send_header("ETag", resource.etag)
            self.end_headers()
            if not with_body:
                return
            state.downloads[path] += 1
            if resource.fault == "stall":
                time.sleep(3)
            elif resource.fault == "drop":
                self.wfile.write(resource.body[: len(resource.body) // 2])
            else:
                self.wfile.write(resource.body)
            self.close_connection = resource.fault is not None

    return Handler


@pytest.fixture
def http_store() -> Iterator[ArtifactServer]:
    state = ArtifactServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_file(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def cache_entries(cache: Path) -> list[Path]:
    """Everything at entry level (`ROOT/SOURCE/*`), partial downloads included."""
    return sorted(p for source in cache.iterdir() for p in source.iterdir()) if cache.exists() else []


@pytest.fixture
def settings(tmp_path: Path) -> StorageSettings:
    return StorageSettings(storage_cache_dir=tmp_path / "cache", storage_timeout_s=5)


# -- http(s) ---------------------------------------------------------------------------------------------------


def test_http_file_keeps_its_name_and_is_downloaded_once(http_store: ArtifactServer, settings: StorageSettings) -> None:
    http_store.resources["/models/iris/model.joblib"] = Resource(b"model-bytes")
    url = http_store.url("/models/iris/model.joblib")
    first = resolve(url, settings)
    assert first.name == "model.joblib" and first.read_bytes() == b"model-bytes"
    assert first.is_relative_to(settings.storage_cache_dir)
    assert resolve(url, settings) == first
    assert http_store.downloads["/models/iris/model.joblib"] == 1


def test_http_changed_etag_downloads_anew(http_store: ArtifactServer, settings: StorageSettings) -> None:
    http_store.resources["/model.joblib"] = Resource(b"version-1", etag='"1"')
    first = resolve(http_store.url("/model.joblib"), settings)
    http_store.resources["/model.joblib"] = Resource(b"version-2", etag='"2"')
    second = resolve(http_store.url("/model.joblib"), settings)
    assert second.read_bytes() == b"version-2" and http_store.downloads["/model.joblib"] == 2
    assert not first.exists() and cache_entries(settings.storage_cache_dir) == [second.parent]


def test_http_without_version_downloads_each_time(http_store: ArtifactServer, settings: StorageSettings) -> None:
    http_store.resources["/model.joblib"] = Resource(b"model", etag=None)
    first = resolve(http_store.url("/model.joblib"), settings)
    second = resolve(http_store.url("/model.joblib"), settings)
    assert second.read_bytes() == b"model" and http_store.downloads["/model.joblib"] == 2
    assert not first.exists() and cache_entries(settings.storage_cache_dir) == [second.parent]


@pytest.mark.parametrize(("name", "pack"), [("model.tar.gz", tar_gz), ("model.tgz", tar_gz), ("model.zip", zip_file)])
def test_http_archive_is_unpacked(
    http_store: ArtifactServer, settings: StorageSettings, name: str, pack: Callable[[dict[str, bytes]], bytes]
) -> None:
    http_store.resources[f"/{name}"] = Resource(pack({"model.joblib": b"model", "assets/labels.txt": b"setosa"}))
    local = resolve(http_store.url(f"/{name}"), settings)
    files = sorted(str(p.relative_to(local)) for p in local.rglob("*"))
    assert files == ["assets", "assets/labels.txt", "model.joblib"]
    assert resolve(http_store.url(f"/{name}"), settings) == local and http_store.downloads[f"/{name}"] == 1


@pytest.mark.parametrize(("name", "pack"), [("evil.tar.gz", tar_gz), ("evil.zip", zip_file)])
def test_http_archive_escaping_its_directory_is_refused(
    http_store: ArtifactServer, settings: StorageSettings, name: str, pack: Callable[[dict[str, bytes]], bytes]
) -> None:
    http_store.resources[f"/{name}"] = Resource(pack({"model.joblib": b"model", "../../escaped.txt": b"x"}))
    url = http_store.url(f"/{name}")
    with pytest.raises(ModelLoadError, match=re.escape(f"could not fetch {url}: ") + ".*outside"):
        resolve(url, settings)
    assert cache_entries(settings.storage_cache_dir) == []
    assert not any(p.name == "escaped.txt" for p in settings.storage_cache_dir.parent.rglob("*"))


@pytest.mark.parametrize(
    ("fault", "reason"), [("error", "500"), ("drop", "Not enough data"), ("stall", "Timeout"), (None, "404")]
)
def test_failed_download_leaves_nothing_and_names_no_secret(
    http_store: ArtifactServer, tmp_path: Path, fault: str | None, reason: str
) -> None:
    if fault is not None:
        http_store.resources["/model.joblib"] = Resource(b"x" * 100_000, fault=fault)
    url = f"http://user:{SECRETS[0]}@127.0.0.1:{http_store.port}/model.joblib?X-Amz-Signature={SECRETS[1]}"
    settings = StorageSettings(storage_cache_dir=tmp_path / "cache", storage_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as raised:
        resolve(url, settings)
    assert time.monotonic() - started < 2.5
    message = raised.value.message
    assert message.startswith(f"could not fetch {http_store.url('/model.joblib')}: ") and reason in message
    assert not any(secret in message for secret in SECRETS) and "user" not in message
    assert cache_entries(settings.storage_cache_dir) == []


# -- s3, through moto's server -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str, iris_model: Path):  # type: ignore[no-untyped-def]
    """Bucket `models` holding `iris/model.joblib` (the trained example) and `iris/metadata/labels.json`."""
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    client = boto3.client("s3", endpoint_url=s3_endpoint, **credentials)
    client.create_bucket(Bucket="models")
    client.upload_file(str(iris_model), "models", "iris/model.joblib")
    client.put_object(Bucket="models", Key="iris/metadata/labels.json", Body=b'["setosa", "versicolor", "virginica"]')
    return client


def s3_environment(endpoint: str, cache: Path, credentials: bool = True) -> dict[str, str]:
    env = {"AWS_ENDPOINT_URL": endpoint, "WHARF_STORAGE_CACHE_DIR": str(cache), "AWS_EC2_METADATA_DISABLED": "true"}
    if credentials:
        env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    return env


_AWS_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_endpoint: str) -> Callable[..., None]:
    """Point this process at the moto server through the environment, as an operator would."""
    for name in (*_AWS_CREDENTIALS, "WHARF_S3_ENDPOINT_URL", "S3_ENDPOINT", "S3_USE_HTTPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    def apply(credentials: bool = True) -> None:
        for name, value in s3_environment(s3_endpoint, tmp_path / "cache", credentials).items():
            monkeypatch.setenv(name, value)

    return apply


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "WHARF_S3_ENDPOINT_URL", "S3_ENDPOINT"])
def test_s3_prefix(
    bucket, s3_env, s3_endpoint: str, iris_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:  # type: ignore[no-untyped-def]
    s3_env()
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    if variable == "S3_ENDPOINT":  # KServe's form: host and port, the scheme from S3_USE_HTTPS
        monkeypatch.setenv("S3_ENDPOINT", s3_endpoint.removeprefix("http://"))
        monkeypatch.setenv("S3_USE_HTTPS", "0")
    else:
        monkeypatch.setenv(variable, s3_endpoint)
    local = resolve("s3://models/iris/")
    assert local.is_relative_to(tmp_path / "cache")
    assert sorted(str(p.relative_to(local)) for p in local.rglob("*")) == [
        "metadata",
        "metadata/labels.json",
        "model.joblib",
    ]
    assert (local / "model.joblib").read_bytes() == iris_model.read_bytes()
    stat = (local / "model.joblib").stat()
    assert resolve("s3://models/iris/") == local
    assert (local / "model.joblib").stat().st_mtime_ns == stat.st_mtime_ns


def test_s3_single_object(bucket, s3_env) -> None:  # type: ignore[no-untyped-def]
    s3_env()
    local = resolve("s3://models/iris/model.joblib")
    assert local.name == "model.joblib" and local.is_file()


def test_s3_changed_object_downloads_anew(bucket, s3_env) -> None:  # type: ignore[no-untyped-def]
    s3_env()
    bucket.put_object(Bucket="models", Key="changing/model.joblib", Body=b"version-1")
    first = resolve("s3://models/changing/")
    bucket.put_object(Bucket="models", Key="changing/model.joblib", Body=b"version-2")
    second = resolve("s3://models/changing/")
    assert second != first and not first.exists()
    assert (second / "model.joblib").read_bytes() == b"version-2"


def test_s3_anonymous_without_credentials(bucket, s3_env) -> None:  # type: ignore[no-untyped-def]
    bucket.put_object(Bucket="models", Key="public/model.joblib", Body=b"public", ACL="public-read")
    s3_env(credentials=False)
    assert resolve("s3://models/public/model.joblib").read_bytes() == b"public"
    with pytest.raises(ModelLoadError, match=r"could not fetch s3://models/iris/model\.joblib: .*Forbidden"):
        resolve("s3://models/iris/model.joblib")


def test_s3_missing(bucket, s3_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s3_env()
    with pytest.raises(ModelLoadError, match=r"^could not fetch s3://models/nothing/: "):
        resolve("s3://models/nothing/")
    assert cache_entries(tmp_path / "cache") == []


# -- end to end: `wharf serve` fetching its model ---------------------------------------------------------------


def assert_predicts_iris(server: RunningServer) -> None:
    flat = [x for row in IRIS_ROWS for x in row]
    body = {"inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP32", "data": flat}]}
    answer = httpx.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == IRIS_LABELS


def test_serve_from_s3(serve, bucket, s3_endpoint: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = s3_environment(s3_endpoint, tmp_path / "cache")
    server = serve("s3://models/iris/model.joblib", "--name", "iris", env=env)
    assert_predicts_iris(server)
    assert [p.name for p in (tmp_path / "cache").rglob("*.joblib")] == ["model.joblib"]


def test_serve_from_http_archive(  # type: ignore[no-untyped-def]
    serve, http_store: ArtifactServer, iris_model: Path, tmp_path: Path
) -> None:
    http_store.resources["/model.tar.gz"] = Resource(tar_gz({"model.joblib": iris_model.read_bytes()}))
    url = f"http://127.0.0.1:{http_store.port}/model.tar.gz?sig={SECRETS[1]}"
    server = serve(url, "--name", "iris", env={"WHARF_STORAGE_CACHE_DIR": str(tmp_path / "cache")})
    assert_predicts_iris(server)
    assert http_store.downloads["/model.tar.gz"] == 1
    assert SECRETS[1] not in "".join(server.log)
