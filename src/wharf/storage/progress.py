"""Download progress: the bytes of an artifact fetched so far, logged as `downloading model` lines.

fsspec reports a transfer to a `Callback`: `get` (several files) branches a child callback per file, and each
file's `get_file` adds the bytes it writes, where its filesystem reports them (HTTP, S3, GCS and Azure do; a local
copy does not). `DownloadProgress` sums those bytes and logs a line when a download begins, then when `interval_s`
has passed or another `step` of the total has arrived since the last line, and when it ends: a dozen lines or so
per download, whatever its size, and a comparison per chunk of bytes (chunks are megabytes) in between.

Each line is `{"event": "downloading model", "uri": ..., "bytes_done": N, "bytes_total": N or null}` (the URI
redacted; the total is null when the store does not say), which the control plane follows to show where a
starting replica stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from fsspec.callbacks import Callback

from wharf.storage.uri import redact

EVENT = "downloading model"

log = logging.getLogger(__name__)


class DownloadProgress:
    """The progress of one download of the artifact at `uri`, `total` bytes in all (None: unknown); used as a
    context manager around the download (its first and last lines), with `files()` or `file()` handed to fsspec."""

    def __init__(
        self,
        uri: str,
        total: int | None,
        *,
        interval_s: float = 1.0,
        step: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri = redact(uri)
        self.total = total
        self.done = 0
        self._interval_s = interval_s
        self._step_bytes = step * total if total else None
        self._clock = clock
        self._logged_at = 0.0
        self._logged_bytes = 0

    def __enter__(self) -> DownloadProgress:
        self._log()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None and self._logged_bytes != self.done:
            self._log()

    def files(self) -> Callback:
        """The callback for `fs.get` (several files): each file's bytes count."""
        return _Files(self)

    def file(self) -> Callback:
        """The callback for `fs.get_file` (one file)."""
        return _Bytes(self)

    def add(self, count: int) -> None:
        """`count` more bytes arrived; a line is logged if the last is old enough or far enough behind."""
        self.done += count
        behind = self.done - self._logged_bytes
        if self._clock() - self._logged_at >= self._interval_s or (
            self._step_bytes is not None and behind >= self._step_bytes
        ):
            self._log()

    def _log(self) -> None:
        self._logged_at, self._logged_bytes = self._clock(), self.done
        log.info(EVENT, extra={"uri": self.uri, "bytes_done": self.done, "bytes_total": self.total})


class _Bytes(Callback):
    """One file's transfer, whose bytes (its `value`, however fsspec moves it) are added to the download's."""

    def __init__(self, progress: DownloadProgress) -> None:
        super().__init__()
        self._progress = progress
        self._counted = 0

    def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
        if self.value > self._counted:
            self._progress.add(self.value - self._counted)
            self._counted = self.value


class _Files(Callback):
    """A transfer of several files (its own value counts files), each of which gets a `_Bytes` of its own."""

    def __init__(self, progress: DownloadProgress) -> None:
        super().__init__()
        self._progress = progress

    def branched(self, path_1: str, path_2: str, **kwargs: Any) -> Callback:
        return _Bytes(self._progress)
