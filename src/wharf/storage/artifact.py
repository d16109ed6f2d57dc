"""What a path in a filesystem names (one file, or the files under a prefix), its version, and its download."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from fsspec import AbstractFileSystem
from fsspec.callbacks import NoOpCallback

from wharf.errors import ConfigurationError
from wharf.storage.archive import extract, inside, is_archive
from wharf.storage.progress import DownloadProgress
from wharf.storage.settings import StorageSettings
from wharf.storage.uri import redact

# info() fields, compared without case, "-" or "_", that change whenever the content does
_VERSION_FIELDS = {"etag", "versionid", "generation", "lastmodified", "contentmd5", "md5hash", "mtime"}


@dataclass(frozen=True, slots=True)
class Artifact:
    fs: AbstractFileSystem
    files: dict[str, dict[str, Any]]  # local name (relative, "/"-separated) -> the store's info() of that file
    single: bool  # a file, as opposed to a prefix (directory)

    @classmethod
    def find(cls, fs: AbstractFileSystem, path: str) -> Artifact:
        """The file or prefix at `path`, listed (raises FileNotFoundError where there is nothing)."""
        info = fs.info(path)
        if info["type"] != "directory":
            return cls(fs, {_file_name(path): info}, single=True)
        root = info["name"].rstrip("/")
        listing = fs.find(path, detail=True)
        files = {name[len(root) :].lstrip("/"): i for name, i in listing.items() if i["type"] == "file"}
        if not files:
            raise FileNotFoundError(f"{path} holds no files")
        return cls(fs, files, single=False)

    @property
    def version(self) -> str | None:
        """A token that changes with the content, or None if the store reports nothing to tell versions apart."""
        stamps = {name: _stamp(info) for name, info in self.files.items()}
        if any(stamp is None for stamp in stamps.values()):
            return None
        return json.dumps(sorted(stamps.items()), default=str)

    @property
    def size(self) -> int | None:
        """The bytes to fetch in all, or None if the store does not give the size of every file."""
        sizes = [info.get("size") for info in self.files.values()]
        return sum(sizes) if all(type(size) is int for size in sizes) else None  # type: ignore[arg-type]

    @property
    def archive(self) -> str | None:
        """The name of the file, if the artifact is a single archive to unpack."""
        name = next(iter(self.files))
        return name if self.single and is_archive(name) else None

    def download(self, directory: Path, settings: StorageSettings, progress: DownloadProgress | None = None) -> None:
        """Write the artifact into the empty `directory` (an archive unpacked within the limits of `settings`),
        counting its bytes in `progress` as they arrive."""
        sources = [info["name"] for info in self.files.values()]
        if self.archive is None:
            targets = [inside(directory, name) for name in self.files]
            for target in targets:
                target.parent.mkdir(parents=True, exist_ok=True)
            callback = progress.files() if progress else NoOpCallback()
            self.fs.get(sources, [str(target) for target in targets], callback=callback)
            return
        with tempfile.TemporaryDirectory(prefix=".archive-", dir=directory) as scratch:
            archive = Path(scratch) / self.archive
            self.fs.get_file(sources[0], str(archive), callback=progress.file() if progress else NoOpCallback())
            extract(archive, directory, settings)

    def local(self, entry: Path) -> Path:
        """The path to hand on, given the cache entry holding the download: a single file, or the directory."""
        return entry / next(iter(self.files)) if self.single and self.archive is None else entry


def _file_name(path: str) -> str:
    """The file name of a store path or URL (without a URL's query string), kept so that runtimes recognise it."""
    name = PurePosixPath(unquote(urlsplit(path).path) if "://" in path else path).name
    if not name:
        raise ConfigurationError(f"{redact(path)} does not end in a file name")
    return name


def _stamp(info: dict[str, Any]) -> dict[str, Any] | None:
    fields = {k: v for k, v in info.items() if re.sub(r"[-_]", "", k.lower()) in _VERSION_FIELDS}
    return {**fields, "size": info.get("size")} if fields else None
