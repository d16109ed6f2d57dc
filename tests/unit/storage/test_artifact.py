"""Listing, versioning and downloading an artifact, with the local filesystem standing in for a store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from tests.unit.storage.test_archive import write_tar
from wharf.errors import ConfigurationError, ModelLoadError
from wharf.storage.artifact import Artifact
from wharf.storage.settings import StorageSettings

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store" / "iris"
    (root / "assets").mkdir(parents=True)
    (root / "model.joblib").write_bytes(b"model")
    (root / "assets" / "labels.txt").write_bytes(b"setosa")
    return root


def download(artifact: Artifact, tmp_path: Path) -> Path:
    directory = tmp_path / "download"
    directory.mkdir()
    artifact.download(directory, StorageSettings())
    return artifact.local(directory)


def test_single_file_keeps_its_name(store: Path, tmp_path: Path) -> None:
    artifact = Artifact.find(LocalFileSystem(), str(store / "model.joblib"))
    assert artifact.single and list(artifact.files) == ["model.joblib"]
    assert download(artifact, tmp_path).read_bytes() == b"model"


def test_prefix_is_every_file_under_it(store: Path, tmp_path: Path) -> None:
    artifact = Artifact.find(LocalFileSystem(), str(store))
    assert not artifact.single and sorted(artifact.files) == ["assets/labels.txt", "model.joblib"]
    local = download(artifact, tmp_path)
    assert (local / "model.joblib").read_bytes() == b"model"
    assert (local / "assets" / "labels.txt").read_bytes() == b"setosa"


def test_archive_is_unpacked(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "model.tar.gz", {"model.joblib": b"model"})
    artifact = Artifact.find(LocalFileSystem(), str(archive))
    assert artifact.archive == "model.tar.gz"
    local = download(artifact, tmp_path)
    assert [p.name for p in local.iterdir()] == ["model.joblib"]


def test_version_follows_the_content(store: Path) -> None:
    fs = LocalFileSystem()
    before = Artifact.find(fs, str(store)).version
    assert before is not None and Artifact.find(fs, str(store)).version == before
    os.utime(store / "assets" / "labels.txt", (1, 1))
    assert Artifact.find(fs, str(store)).version != before


def test_no_version_without_version_fields(store: Path) -> None:
    artifact = Artifact.find(LocalFileSystem(), str(store))
    stripped = {name: {"name": i["name"], "size": i["size"], "type": "file"} for name, i in artifact.files.items()}
    assert Artifact(artifact.fs, stripped, single=False).version is None


def test_names_escaping_the_directory_are_refused(store: Path, tmp_path: Path) -> None:
    artifact = Artifact.find(LocalFileSystem(), str(store / "model.joblib"))
    escaping = Artifact(artifact.fs, {"../model.joblib": artifact.files["model.joblib"]}, single=False)
    with pytest.raises(ModelLoadError, match="outside"):
        download(escaping, tmp_path)


def test_missing_and_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "missing", tmp_path / "empty"):
        with pytest.raises(FileNotFoundError):
            Artifact.find(LocalFileSystem(), str(path))


def test_url_file_name_drops_the_query() -> None:
    from wharf.storage.artifact import _file_name

    assert _file_name("https://u:p@host/x/my%20model.joblib?sig=abc") == "my model.joblib"
    with pytest.raises(ConfigurationError, match="file name") as raised:
        _file_name("https://u:p@host/?sig=abc")
    assert "sig" not in raised.value.message and "u:p" not in raised.value.message
