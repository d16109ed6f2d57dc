"""The local cache of fetched artifacts: `ROOT/SOURCE/VERSION/`, filled atomically.

SOURCE names the URI (readable, plus a hash of the URI without its userinfo) and VERSION hashes what the store
says about the content (ETag, version id, ...). A download goes to `ROOT/SOURCE/.partial-*` and is renamed to
VERSION only once complete, so an entry is never half-written; older versions of the same URI are then removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from wharf.storage.uri import redact, without_userinfo

PARTIAL_PREFIX = ".partial-"


def _digest(text: str, length: int = 16) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class ArtifactCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, uri: str, version: str | None) -> Path:
        """Where the artifact at `uri` with `version` is kept; one without a version gets a fresh entry each time."""
        readable = re.sub(r"[^A-Za-z0-9._]+", "-", redact(uri)).strip("-")[-48:]
        source = f"{readable}-{_digest(without_userinfo(uri))}"
        return self.root / source / (_digest(version) if version is not None else f"unversioned-{uuid.uuid4().hex}")

    def fill(self, entry: Path, download: Callable[[Path], None]) -> Path:
        """`entry`, downloaded by `download(directory)` unless it is already there."""
        if entry.is_dir():
            return entry
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=entry.parent))
        try:
            download(partial)
            try:
                partial.rename(entry)
            except OSError:
                if not entry.is_dir():  # not a concurrent fetch of the same version that finished first
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
            with contextlib.suppress(OSError):
                entry.parent.rmdir()  # when a failed download left it empty
        for old in entry.parent.iterdir():
            if old != entry and not old.name.startswith(PARTIAL_PREFIX):
                shutil.rmtree(old, ignore_errors=True)
        return entry
