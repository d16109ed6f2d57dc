"""Storing a model where Wharf's daemon reads it: a pipeline's artifact (a file or a directory) is copied to
`DIRECTORY/NAME/DIGEST/FILENAME`, DIGEST being the first 16 hex digits of its content's SHA-256, and that path is the
`storageUri` to deploy. DIRECTORY is a local path (the daemon's machine) or any URL fsspec writes (`s3://...`,
`gs://...`) that the daemon can read; by default WHARF_HOME/models, where `wharf up`'s policy lets local models load
from (`WHARF_POLICY_STORAGE_ROOTS` names others).

Addressing by content makes storing idempotent: the same model stored twice is one copy, and deploying it again is
no new revision; another model is another path, hence another revision. A copy is made beside its place and moved
there when complete, so a daemon never reads half a model.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import fsspec

from wharf.client.control import home_from_env
from wharf.errors import ConfigurationError

DIGEST_CHARS = 16
HOME_MODELS = "models"  # WHARF_HOME/models: local models load from there (wharf.control.policy)


def content_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, or of a directory's files' relative paths and bytes (in path order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as data:
            for block in iter(lambda: data.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:DIGEST_CHARS]


def store(source: str | Path, directory: str, name: str, filename: str = "model.joblib") -> str:
    """Copy the model at `source` to `directory` (empty: WHARF_HOME/models; see the module's docstring); its
    storageUri there."""
    for field, value in (("name", name), ("filename", filename)):
        if not value or "/" in value or value in (".", ".."):
            raise ConfigurationError(f"{field}: {value!r} is not one path segment")
    if not os.path.exists(source):
        raise ConfigurationError(f"model: nothing at {source}")
    if "://" not in directory:
        directory = os.path.abspath(directory or home_from_env() / HOME_MODELS)
    target = f"{directory.rstrip('/')}/{name}/{content_digest(source)}/{filename}"
    fs, path = fsspec.core.url_to_fs(target)
    if not fs.exists(path):
        partial = f"{path}.{uuid.uuid4().hex}.partial"
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.put(str(source), partial, recursive=os.path.isdir(source))
        fs.mv(partial, path, recursive=os.path.isdir(source))
    return target
