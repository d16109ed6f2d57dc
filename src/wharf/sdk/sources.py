"""What `apply` takes: a spec model, a decoded manifest (dict), YAML or JSON text, or a file's path; each checked
here with the control plane's own validation before it is sent, so that a bad manifest raises `SpecError` naming
each field, whatever the server's version of the error looks like.

Relative paths in a manifest (`storageUri: model.joblib`) are read, as `wharf apply -f` reads them, from the file's
directory, else from the caller's working directory; the control plane resolves them (it is handed that directory).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf.control.spec import InferenceGraph, InferenceService, Manifest, parse_manifest, parse_manifests
from wharf.errors import ConfigurationError

Source = InferenceService | InferenceGraph | Mapping[str, Any] | str | os.PathLike[str]
FILE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Prepared:
    """A source ready to send: its `text`, the directory its relative paths are read from, and its manifests."""

    text: str
    base: Path
    manifests: list[Manifest]


def prepare(source: Source) -> Prepared:
    """`source` checked (raises SpecError naming the fields, ConfigurationError for a file it cannot read)."""
    if isinstance(source, InferenceService | InferenceGraph):
        return _one(source)
    if isinstance(source, Mapping):
        return _one(parse_manifest(source))
    if isinstance(source, os.PathLike) or _names_file(source):
        path = Path(source)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigurationError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
        return Prepared(text, path.absolute().parent, parse_manifests(text))
    return Prepared(source, Path.cwd(), parse_manifests(source))


def _one(manifest: Manifest) -> Prepared:
    return Prepared(json.dumps(manifest.to_manifest()), Path.cwd(), [manifest])


def _names_file(text: str) -> bool:
    """Whether a string names a file (one line ending in .yaml, .yml or .json) rather than holding a manifest."""
    return "\n" not in text and text.strip().endswith(FILE_SUFFIXES)
