"""Model URIs: their scheme, the local path of a local one, and their credential-free form for messages."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from fsspec.core import strip_protocol

from wharf.errors import ConfigurationError
from wharf.storage.settings import StorageSettings

LOCAL_SCHEMES = ("", "file", "pvc")

# scheme://, then optional userinfo (up to the last "@" before the path), then the rest up to a query or fragment
_URL = re.compile(r"([a-z][a-z0-9+.-]*://)(?:[^/?#\s'\"]*@)?([^?#\s'\"]*)(?:[?#][^\s'\"]*)?", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the userinfo, query string and fragment of every URL in it removed (they may hold secrets)."""
    return _URL.sub(r"\1\2", text)


def without_userinfo(uri: str) -> str:
    """`uri` without `user:password@`, keeping everything else."""
    parts = urlsplit(uri)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def scheme(uri: str) -> str:
    """The scheme of `uri` in lower case; "" for a plain path (a Windows drive letter is part of a path)."""
    found = urlsplit(uri).scheme.lower()
    return found if len(found) > 1 else ""


def local_path(uri: str, settings: StorageSettings) -> Path:
    """The existing local file or directory that a path, `file://` or `pvc://NAME/PATH` URI names."""
    path = _pvc_path(uri, settings) if scheme(uri) == "pvc" else Path(strip_protocol(uri))
    if not path.exists():
        raise ConfigurationError(f"model path {redact(uri)} does not exist")
    return path.resolve()


def _pvc_path(uri: str, settings: StorageSettings) -> Path:
    if settings.pvc_root is None:
        raise ConfigurationError(f"{redact(uri)}: set WHARF_PVC_ROOT to the directory where volumes are mounted")
    parts = urlsplit(uri)
    root = settings.pvc_root.resolve()
    path = (root / parts.netloc / parts.path.lstrip("/")).resolve()
    if not parts.netloc or not path.is_relative_to(root / parts.netloc):
        raise ConfigurationError(f"{redact(uri)} does not name a path inside a volume (pvc://NAME/PATH)")
    return path


def model_name(uri: str) -> str:
    """A default model name for `uri`: its last path segment without query, extension or archive suffix."""
    path = urlsplit(uri).path if "://" in uri else uri
    last = PurePosixPath(path.rstrip("/")).name or "model"
    for suffix in (".tar.gz", ".tgz", ".zip"):
        if last.lower().endswith(suffix):
            return last[: -len(suffix)]
    return PurePosixPath(last).stem
