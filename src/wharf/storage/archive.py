"""Unpacking `.zip`, `.tar.gz` and `.tgz` artifacts within limits, refusing any member that would land outside the
target.

An archive may hold at most `storage_max_unpacked_files` members and unpack to at most
`storage_max_unpacked_bytes`, and to at most `storage_max_unpack_ratio` times its own size beyond the first
`_RATIO_ALLOWANCE` bytes (model files compress a few times; a bomb's zeros a thousand times); all are counted member by member as they are written (a zip member's bytes as they
are decompressed, whatever its headers say; a tar member's as tarfile writes them: exactly the size its header
gives), so that a bomb (a small archive of huge or countless files) is stopped at the limit, with an error naming
the archive and the setting. The caller unpacks into a directory of its own and
removes it on failure (the cache's partial entry).

Tar members go through tarfile's "data" filter: no absolute or `..` names, no links leading outside the target,
no device files. Zip members are checked by name (zipfile writes links as plain files).
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path
from typing import IO

from wharf.errors import ModelLoadError
from wharf.storage.settings import StorageSettings

SUFFIXES = (".zip", ".tar.gz", ".tgz")
_CHUNK = 2**20
_RATIO_ALLOWANCE = 64 * 2**20  # what any archive may unpack to, however small: a few small files compress well


def is_archive(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def inside(root: Path, name: str) -> Path:
    """`root / name`, refusing a name (absolute, or with `..`) that resolves outside `root`."""
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ModelLoadError(f"{name!r} points outside the model directory")
    return path


class _Budget:
    """What an archive may still unpack: members and bytes."""

    def __init__(self, archive: Path, settings: StorageSettings) -> None:
        self._archive = archive.name
        self._max_files = settings.storage_max_unpacked_files
        ratio = settings.storage_max_unpack_ratio
        by_ratio = max(ratio * archive.stat().st_size, _RATIO_ALLOWANCE)
        if by_ratio < settings.storage_max_unpacked_bytes:
            self._max_bytes, self._setting = by_ratio, f"{ratio:g} times its size: WHARF_STORAGE_MAX_UNPACK_RATIO"
        else:
            self._max_bytes, self._setting = settings.storage_max_unpacked_bytes, "WHARF_STORAGE_MAX_UNPACKED_BYTES"
        self._files = 0
        self._bytes = 0

    def member(self) -> None:
        self._files += 1
        if self._files > self._max_files:
            raise ModelLoadError(
                f"archive {self._archive} holds more than {self._max_files} files (WHARF_STORAGE_MAX_UNPACKED_FILES)"
            )

    def take(self, size: int) -> None:
        self._bytes += size
        if self._bytes > self._max_bytes:
            raise ModelLoadError(
                f"archive {self._archive} unpacks to more than {self._max_bytes:.0f} bytes ({self._setting})"
            )

    def copy(self, source: IO[bytes], target: Path) -> None:
        """Write `source` to `target`, counting its bytes as they go."""
        with target.open("wb") as out:
            while chunk := source.read(_CHUNK):
                self.take(len(chunk))
                out.write(chunk)


def extract(archive: Path, target: Path, settings: StorageSettings) -> None:
    """Unpack `archive` into the directory `target`, within the limits of `settings`."""
    budget = _Budget(archive, settings)
    if archive.name.lower().endswith(".zip"):
        _extract_zip(archive, target, budget)
    else:
        _extract_tar(archive, target, budget)


def _extract_zip(archive: Path, target: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as members:
        infos = members.infolist()
        for info in infos:
            inside(target, info.filename)  # all checked before anything is written
        for info in infos:
            budget.member()
            path = inside(target, info.filename)
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with members.open(info) as source:
                budget.copy(source, path)


def _extract_tar(archive: Path, target: Path, budget: _Budget) -> None:
    def admit(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        member = tarfile.data_filter(member, path)
        budget.member()
        if member.isfile():  # tarfile writes exactly `size` bytes of a member, however much its data would give
            budget.take(member.size)
        return member

    with tarfile.open(archive, "r:gz") as members:
        try:
            members.extractall(target, filter=admit)
        except tarfile.FilterError as e:
            raise ModelLoadError(f"archive member refused: {e}") from None
