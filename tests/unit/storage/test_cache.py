"""The artifact cache: entry names and atomic filling."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.storage.cache import ArtifactCache

pytestmark = pytest.mark.timeout(10)

URI = "https://user:s3cr3t@models.example.com/iris/model.joblib?sig=t0ken"


def write_model(directory: Path) -> None:
    (directory / "model.joblib").write_bytes(b"model")


def test_entry_is_per_uri_and_version_and_names_no_credentials(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    entry = cache.entry(URI, '"etag-1"')
    assert entry == cache.entry(URI, '"etag-1"')
    assert entry != cache.entry(URI, '"etag-2"')
    assert entry.parent == cache.entry(URI, '"etag-2"').parent
    assert entry.parent != cache.entry(URI.replace("iris", "wine"), '"etag-1"').parent
    assert entry.parent.name.startswith("https-models.example.com-iris-model.joblib-")
    name = str(entry.relative_to(tmp_path))
    assert "s3cr3t" not in name and "t0ken" not in name and "user" not in name


def test_entry_without_version_is_never_reused(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    assert cache.entry(URI, None) != cache.entry(URI, None)


def test_fill_downloads_once(tmp_path: Path) -> None:
    cache, calls = ArtifactCache(tmp_path), []

    def download(directory: Path) -> None:
        calls.append(directory)
        write_model(directory)

    entry = cache.entry(URI, "v1")
    assert cache.fill(entry, download) == entry
    assert cache.fill(entry, download) == entry
    assert len(calls) == 1 and (entry / "model.joblib").read_bytes() == b"model"
    assert calls[0].parent == entry.parent and not calls[0].exists()


def test_failed_fill_leaves_nothing(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)

    def half_download(directory: Path) -> None:
        (directory / "model.joblib").write_bytes(b"mod")
        raise ConnectionResetError("dropped")

    entry = cache.entry(URI, "v1")
    with pytest.raises(ConnectionResetError):
        cache.fill(entry, half_download)
    assert not entry.parent.exists()  # nor the directory of its URI, left empty


def test_new_version_replaces_the_old(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    old = cache.fill(cache.entry(URI, "v1"), write_model)
    new = cache.fill(cache.entry(URI, "v2"), write_model)
    assert list(new.parent.iterdir()) == [new] and not old.exists()


def test_partial_downloads_of_others_are_left_alone(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    entry = cache.entry(URI, "v1")
    in_progress = entry.parent / ".partial-other"
    in_progress.mkdir(parents=True)
    cache.fill(entry, write_model)
    assert in_progress.is_dir()
