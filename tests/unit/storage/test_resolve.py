"""`resolve` for local URIs: in place, or unpacked into the cache for an archive."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.storage.test_archive import write_tar, write_zeros_tar, write_zip
from wharf.errors import ConfigurationError, ModelLoadError
from wharf.storage import StorageSettings, resolve

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def settings(tmp_path: Path) -> StorageSettings:
    return StorageSettings(storage_cache_dir=tmp_path / "cache", pvc_root=tmp_path / "volumes")


def test_paths_resolve_in_place(tmp_path: Path, settings: StorageSettings) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(b"model")
    assert resolve(str(model), settings) == model
    assert resolve(f"file://{model}", settings) == model
    assert resolve(f"file://{tmp_path}", settings) == tmp_path
    assert not settings.storage_cache_dir.exists()


def test_relative_path(tmp_path: Path, settings: StorageSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.joblib").write_bytes(b"model")
    monkeypatch.chdir(tmp_path)
    assert resolve("model.joblib", settings) == tmp_path / "model.joblib"


def test_pvc(tmp_path: Path, settings: StorageSettings) -> None:
    model = tmp_path / "volumes" / "models" / "iris" / "model.joblib"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"model")
    assert resolve("pvc://models/iris/model.joblib", settings) == model


def test_missing_path(tmp_path: Path, settings: StorageSettings) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        resolve(str(tmp_path / "missing.joblib"), settings)


@pytest.mark.parametrize("name", ["model.tar.gz", "model.tgz", "model.zip"])
def test_local_archive_is_unpacked_into_the_cache(tmp_path: Path, settings: StorageSettings, name: str) -> None:
    archive = (write_zip if name.endswith(".zip") else write_tar)(tmp_path / name, {"model.joblib": b"model"})
    local = resolve(str(archive), settings)
    assert local.is_relative_to(settings.storage_cache_dir)
    assert (local / "model.joblib").read_bytes() == b"model"
    assert resolve(f"file://{archive}", settings) == local


def test_changed_archive_is_unpacked_anew(tmp_path: Path, settings: StorageSettings) -> None:
    archive = write_tar(tmp_path / "model.tgz", {"model.joblib": b"one"})
    first = resolve(str(archive), settings)
    write_tar(archive, {"model.joblib": b"two"})
    os.utime(archive, (1, 1))
    second = resolve(str(archive), settings)
    assert second != first and not first.exists()
    assert (second / "model.joblib").read_bytes() == b"two"


def test_cache_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_STORAGE_CACHE_DIR", str(tmp_path / "env-cache"))
    archive = write_tar(tmp_path / "model.tgz", {"model.joblib": b"model"})
    assert resolve(str(archive)).is_relative_to(tmp_path / "env-cache")


def test_a_bomb_leaves_nothing_in_the_cache(tmp_path: Path, settings: StorageSettings) -> None:
    archive = write_zeros_tar(tmp_path / "bomb.tar.gz", {"model.joblib": 2**10, "weights.bin": 64 * 2**20})
    limited = settings.model_copy(update={"storage_max_unpacked_bytes": 2**20})
    with pytest.raises(ModelLoadError, match="archive bomb.tar.gz unpacks to more than 1048576 bytes"):
        resolve(str(archive), limited)
    assert list(settings.storage_cache_dir.iterdir()) == []  # no partial entry, nor its empty parent
