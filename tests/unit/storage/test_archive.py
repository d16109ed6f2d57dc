"""Unpacking archives, and refusing members that would land outside the target directory."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from wharf.errors import ModelLoadError
from wharf.storage.archive import extract, inside, is_archive

pytestmark = pytest.mark.timeout(10)


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


@pytest.mark.parametrize("name", ["m.zip", "m.ZIP", "m.tar.gz", "m.tgz"])
def test_archive_names(name: str) -> None:
    assert is_archive(name)


@pytest.mark.parametrize("name", ["model.joblib", "model.tar", "model.gz", "zip"])
def test_other_names(name: str) -> None:
    assert not is_archive(name)


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz", ".tgz"])
def test_extracts_nested_members(tmp_path: Path, suffix: str) -> None:
    members = {"model.joblib": b"model", "assets/vocab.txt": b"words"}
    archive = (write_zip if suffix == ".zip" else write_tar)(tmp_path / f"model{suffix}", members)
    target = tmp_path / "out"
    target.mkdir()
    extract(archive, target)
    assert (target / "model.joblib").read_bytes() == b"model"
    assert (target / "assets" / "vocab.txt").read_bytes() == b"words"


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil.txt"])
def test_zip_member_escaping_is_refused(tmp_path: Path, name: str) -> None:
    archive = write_zip(tmp_path / "evil.zip", {"model.joblib": b"m", name: b"x"})
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ModelLoadError, match="outside"):
        extract(archive, target)
    assert list(target.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_tar_member_escaping_is_refused(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "evil.tar.gz", {"../evil.txt": b"x"})
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ModelLoadError, match="outside"):
        extract(archive, target)
    assert not (tmp_path / "evil.txt").exists()


def test_tar_link_escaping_is_refused(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "evil.tgz", {}, links={"escape": "../../etc"})
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ModelLoadError, match="refused"):
        extract(archive, target)
    assert not (target / "escape").exists()


def test_inside(tmp_path: Path) -> None:
    assert inside(tmp_path, "a/b.txt") == tmp_path / "a" / "b.txt"
    with pytest.raises(ModelLoadError, match="outside"):
        inside(tmp_path, "a/../../b.txt")
