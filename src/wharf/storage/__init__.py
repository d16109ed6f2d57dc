"""Fetching model artifacts by URI.

Local paths and `file://` URIs resolve in place.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from wharf.errors import ConfigurationError


def resolve(uri: str) -> Path:
    """A local path holding the artifact(s) at `uri`."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = Path(parsed.path)
    elif parsed.scheme in ("", ) or len(parsed.scheme) == 1:  # a plain path (or a Windows drive letter)
        path = Path(uri)
    else:
        raise ConfigurationError(f"storage scheme {parsed.scheme!r} of {uri!r} is not supported yet")
    if not path.exists():
        raise ConfigurationError(f"model path {path} does not exist")
    return path.resolve()
