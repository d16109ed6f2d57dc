"""Storing models by content: where they go, idempotence, directories, fsspec URLs, refusals."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from wharf.errors import ConfigurationError
from wharf.kfp.store import DIGEST_CHARS, content_digest, store


def test_a_model_file_is_stored_under_its_content_digest(tmp_path: Path) -> None:
    model = tmp_path / "artifact"
    model.write_bytes(b"weights")
    uri = store(model, str(tmp_path / "models"), "iris")
    digest = content_digest(model)
    assert len(digest) == DIGEST_CHARS
    assert uri == str(tmp_path / "models" / "iris" / digest / "model.joblib")
    assert Path(uri).read_bytes() == b"weights"
    assert store(model, str(tmp_path / "models"), "iris") == uri  # the same model: the same place, one copy
    assert [p.name for p in (tmp_path / "models" / "iris" / digest).iterdir()] == ["model.joblib"]
    model.write_bytes(b"other weights")
    assert store(model, str(tmp_path / "models"), "iris") != uri  # another model: another place


def test_a_relative_directory_is_made_absolute_for_the_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").write_bytes(b"w")
    assert store("m", "models", "iris", "model.bst").startswith(f"{tmp_path}/models/iris/")


def test_without_a_directory_models_go_to_the_daemons_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_HOME", str(tmp_path / "home"))
    (tmp_path / "m").write_bytes(b"w")
    assert store(tmp_path / "m", "", "iris").startswith(f"{tmp_path}/home/models/iris/")


def test_a_model_directory_is_stored_whole(tmp_path: Path) -> None:
    model = tmp_path / "saved"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables" / "v.data").write_bytes(b"values")
    uri = Path(store(model, str(tmp_path / "models"), "tf", "model"))
    assert (uri / "saved_model.pb").read_bytes() == b"graph"
    assert (uri / "variables" / "v.data").read_bytes() == b"values"
    renamed = tmp_path / "renamed"
    (renamed / "variables").mkdir(parents=True)
    (renamed / "saved_model.pb").write_bytes(b"graph")
    (renamed / "variables" / "w.data").write_bytes(b"values")
    assert content_digest(renamed) != content_digest(model)  # a file's path is part of the content


def test_a_url_directory_is_written_through_fsspec(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.write_bytes(b"weights")
    uri = store(model, "memory://bucket/models", "iris")
    assert uri == f"memory://bucket/models/iris/{content_digest(model)}/model.joblib"
    with fsspec.open(uri, "rb") as stored:
        assert stored.read() == b"weights"
    assert not [p for p in fsspec.filesystem("memory").find("/bucket") if p.endswith(".partial")]


@pytest.mark.parametrize(
    ("name", "filename", "field"), [("a/b", "m", "name"), ("iris", "..", "filename"), ("", "m", "name")]
)
def test_names_that_are_not_one_path_segment_are_refused(tmp_path: Path, name: str, filename: str, field: str) -> None:
    (tmp_path / "m").write_bytes(b"w")
    with pytest.raises(ConfigurationError, match=f"{field}: .* is not one path segment"):
        store(tmp_path / "m", str(tmp_path), name, filename)


def test_a_missing_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="model: nothing at"):
        store(tmp_path / "none", str(tmp_path), "iris")
