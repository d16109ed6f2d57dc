"""Fetching model artifacts by URI.

A plain path, `file://` or `pvc://NAME/PATH` (under `WHARF_PVC_ROOT`) resolves in place. `http(s)://`, `s3://`,
`gs://` and `az://` are fetched through fsspec and its plugins into the cache (`WHARF_STORAGE_CACHE_DIR`), keyed
by URI and by the version the store reports, so that an unchanged artifact is downloaded once, logging its
progress as it comes (progress.py). A `.zip`, `.tar.gz` or `.tgz` file, local or remote, is unpacked into the cache.
"""

from __future__ import annotations

import functools
from pathlib import Path

from wharf.errors import ConfigurationError, ModelLoadError, WharfError
from wharf.storage.archive import is_archive
from wharf.storage.artifact import Artifact
from wharf.storage.cache import ArtifactCache
from wharf.storage.progress import DownloadProgress
from wharf.storage.settings import StorageSettings
from wharf.storage.stores import connect
from wharf.storage.uri import LOCAL_SCHEMES, local_path, model_name, redact, scheme

__all__ = ["StorageSettings", "model_name", "resolve"]


def resolve(uri: str, settings: StorageSettings | None = None) -> Path:
    """A local path holding the artifact(s) at `uri`: a file, or a directory."""
    settings = settings or StorageSettings()
    if scheme(uri) in LOCAL_SCHEMES:
        path = local_path(uri, settings)
        if not (path.is_file() and is_archive(path.name)):
            return path
        uri = f"file://{path}"  # one cache entry per archive, however it was named (fsspec reads it unquoted)
    try:
        return _fetch(uri, settings)
    except ConfigurationError:
        raise
    except Exception as e:
        raise ModelLoadError(f"could not fetch {redact(uri)}: {_reason(e)}") from None


def _fetch(uri: str, settings: StorageSettings) -> Path:
    artifact = Artifact.find(*connect(uri, settings))
    cache = ArtifactCache(settings.storage_cache_dir)
    entry = cache.entry(uri, artifact.version)
    if entry.is_dir():
        return artifact.local(entry)
    with DownloadProgress(uri, artifact.size) as progress:
        filled = cache.fill(entry, functools.partial(artifact.download, settings=settings, progress=progress))
    return artifact.local(filled)


def _reason(error: BaseException) -> str:
    """What went wrong, on one line, from the store's own error that fsspec may wrap, with any URL in it redacted."""
    while error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, WharfError):
        return redact(error.message)
    text = " ".join(redact(str(error)).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
