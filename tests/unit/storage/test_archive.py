"""Unpacking archives, refusing members that would land outside the target directory and bombs (archives that
unpack to more bytes or files than the settings allow)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from wharf.errors import ModelLoadError
from wharf.storage.archive import extract, inside, is_archive
from wharf.storage.settings import StorageSettings

pytestmark = pytest.mark.timeout(10)

DEFAULTS = StorageSettings()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_tar(
    path: Path, members: dict[str, bytes], links: dict[str, str] | None = None, link_type: bytes = tarfile.SYMTYPE
) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = link_type, target
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
    extract(archive, target, DEFAULTS)
    assert (target / "model.joblib").read_bytes() == b"model"
    assert (target / "assets" / "vocab.txt").read_bytes() == b"words"


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil.txt"])
def test_zip_member_escaping_is_refused(tmp_path: Path, name: str) -> None:
    archive = write_zip(tmp_path / "evil.zip", {"model.joblib": b"m", name: b"x"})
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ModelLoadError, match="outside"):
        extract(archive, target, DEFAULTS)
    assert list(target.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_tar_member_escaping_is_refused(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "evil.tar.gz", {"../evil.txt": b"x"})
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ModelLoadError, match="outside"):
        extract(archive, target, DEFAULTS)
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize(
    ("link", "link_type"),
    [("../../etc", tarfile.SYMTYPE), ("/etc/passwd", tarfile.SYMTYPE), ("../../etc/passwd", tarfile.LNKTYPE)],
)
def test_tar_link_escaping_is_refused(tmp_path: Path, link: str, link_type: bytes) -> None:
    archive = write_tar(tmp_path / "evil.tgz", {}, links={"escape": link}, link_type=link_type)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ModelLoadError, match="refused"):
        extract(archive, target, DEFAULTS)
    assert not (target / "escape").exists()


def test_inside(tmp_path: Path) -> None:
    assert inside(tmp_path, "a/b.txt") == tmp_path / "a" / "b.txt"
    with pytest.raises(ModelLoadError, match="outside"):
        inside(tmp_path, "a/../../b.txt")


def write_zeros_tar(path: Path, sizes: dict[str, int]) -> Path:
    """A tar.gz of members of zeros (each `size` bytes, compressed to almost nothing), written without holding
    them in memory."""
    with tarfile.open(path, "w:gz") as archive:
        for name, size in sizes.items():
            info = tarfile.TarInfo(name)
            info.size = size
            archive.addfile(info, _Zeros(size))
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def write_zeros_zip(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("model.bin", "w") as member:
        for _ in range(size // 2**20):
            member.write(bytes(2**20))
    return path


LIMITED = StorageSettings(storage_max_unpacked_bytes=4 * 2**20, storage_max_unpacked_files=100)


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_a_bomb_is_refused_at_the_byte_limit(tmp_path: Path, suffix: str) -> None:
    size = 64 * 2**20  # 64 MiB of zeros: about 64 KiB compressed
    archive = tmp_path / f"bomb{suffix}"
    if suffix == ".zip":
        write_zeros_zip(archive, size)
    else:
        write_zeros_tar(archive, {"model.bin": size})
    assert archive.stat().st_size < 2**20
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ModelLoadError) as refused:
        extract(archive, target, LIMITED)
    assert refused.value.message == (
        f"archive bomb{suffix} unpacks to more than {4 * 2**20} bytes (WHARF_STORAGE_MAX_UNPACKED_BYTES)"
    )
    written = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    assert written <= 5 * 2**20  # stopped at the limit (give or take one chunk), not after


def test_many_small_members_are_refused_at_the_file_limit(tmp_path: Path) -> None:
    archive = write_zeros_tar(tmp_path / "many.tgz", {f"f{i}": 0 for i in range(5000)})
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ModelLoadError, match=r"archive many.tgz holds more than 100 files \(WHARF_STORAGE_MAX"):
        extract(archive, target, LIMITED)
    assert len(list(target.iterdir())) <= 100


def test_many_small_zip_members_are_refused_at_the_file_limit(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "many.zip", {f"f{i}": b"" for i in range(101)})
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ModelLoadError, match="archive many.zip holds more than 100 files"):
        extract(archive, target, LIMITED)


def test_within_the_limits_everything_is_unpacked(tmp_path: Path) -> None:
    archive = write_zeros_tar(tmp_path / "fits.tgz", {f"d/f{i}": 2**10 for i in range(100)})
    target = tmp_path / "out"
    target.mkdir()
    extract(archive, target, StorageSettings(storage_max_unpacked_bytes=100 * 2**10, storage_max_unpacked_files=100))
    assert sorted(p.stat().st_size for p in (target / "d").iterdir()) == [2**10] * 100


def test_a_bomb_under_the_byte_limit_is_refused_by_its_ratio(tmp_path: Path) -> None:
    """The issue's case: a small archive that unpacks a thousand times over (here 96 MiB of zeros in about 100 KiB),
    with the default settings, whose byte limit (8 GiB) it stays far under."""
    archive = write_zeros_tar(tmp_path / "bomb.tar.gz", {"model.bin": 96 * 2**20})
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ModelLoadError) as refused:
        extract(archive, target, StorageSettings())
    assert refused.value.message == (
        f"archive bomb.tar.gz unpacks to more than {64 * 2**20} bytes (100 times its size: "
        "WHARF_STORAGE_MAX_UNPACK_RATIO)"
    )
    big = write_zeros_tar(tmp_path / "weights.tar.gz", {"model.bin": 8 * 2**20})  # under the allowance: unpacked
    extract(big, tmp_path / "weights", StorageSettings())
    assert (tmp_path / "weights/model.bin").stat().st_size == 8 * 2**20
