"""Unpacking `.zip`, `.tar.gz` and `.tgz` artifacts, refusing any member that would land outside the target."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from wharf.errors import ModelLoadError

SUFFIXES = (".zip", ".tar.gz", ".tgz")


def is_archive(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def inside(root: Path, name: str) -> Path:
    """`root / name`, refusing a name (absolute, or with `..`) that resolves outside `root`."""
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ModelLoadError(f"{name!r} points outside the model directory")
    return path


def extract(archive: Path, target: Path) -> None:
    """Unpack `archive` into the directory `target`."""
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as members:
            for name in members.namelist():
                inside(target, name)
            members.extractall(target)
        return
    with tarfile.open(archive, "r:gz") as members:
        try:
            # the "data" filter also refuses links leading outside `target` and device files
            members.extractall(target, filter="data")
        except tarfile.FilterError as e:
            raise ModelLoadError(f"archive member refused: {e}") from None
