"""A revision's replica logs as one stream, as `kubectl logs` shows a pod's: the last lines, then (following) what
they write next.

The local backend writes each replica's output to `WHARF_HOME/logs/<revision>/<replica id>.log`, appending across
its restarts. A stream shows the files of the replicas it is given (else the revision's most recent file), each
line prefixed with `[replica id] ` while it shows more than one; following, it polls its files every `poll_s` for
new lines and the revision's directory every `scan_s` for replicas started since. Files are read in a worker thread
(a large log never holds the event loop), at most `CHUNK_BYTES` at a time; a line longer than that is cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

CHUNK_BYTES = 1 << 16
_SUFFIX = ".log"


@dataclass
class _Followed:
    replica: str
    path: Path
    offset: int = 0
    partial: bytes = field(default=b"")

    def read(self) -> list[bytes]:
        """The complete lines written since the last read (up to CHUNK_BYTES of them)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(CHUNK_BYTES)
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, rest = (self.partial + data).split(b"\n")
        if len(rest) >= CHUNK_BYTES:  # no end in sight: show what came
            lines, rest = [*lines, rest], b""
        self.partial = rest
        return lines

    def start_at_tail(self, lines: int | None) -> None:
        """Begin at the file's last `lines` lines (None: at its start)."""
        if lines is None:
            return
        try:
            with open(self.path, "rb") as f:
                end = f.seek(0, 2)
                start, found = end, -1  # the newline that ends the last line does not count
                while start > 0 and found < lines:
                    step = min(CHUNK_BYTES, start)
                    f.seek(start - step)
                    block = f.read(step)
                    start -= step
                    cut = len(block)
                    while found < lines and (cut := block.rfind(b"\n", 0, cut)) >= 0:
                        found += 1
                    if found >= lines:
                        start += cut + 1
        except FileNotFoundError:
            return
        self.offset = start


def replica_of(path: Path) -> str:
    return path.name.removesuffix(_SUFFIX)


def chosen_files(directory: Path, replicas: list[str]) -> list[Path]:
    """The log files to show: those of `replicas`, else the directory's most recently written one."""
    if replicas:
        return [directory / f"{replica}{_SUFFIX}" for replica in replicas]
    files = sorted(directory.glob(f"*{_SUFFIX}"), key=lambda p: p.stat().st_mtime) if directory.is_dir() else []
    return files[-1:]


async def log_stream(
    directory: Path,
    replicas: list[str],
    tail: int | None,
    follow: bool,
    stopped: Callable[[], bool],
    poll_s: float = 0.25,
    scan_s: float = 1.0,
) -> AsyncIterator[bytes]:
    """The lines of the chosen files (`chosen_files`): the last `tail` of each (None: all), then, with `follow`,
    new ones as they come, from replicas started since included, until `stopped()` or the reader goes."""
    known = set(await asyncio.to_thread(lambda: list(directory.glob(f"*{_SUFFIX}")) if directory.is_dir() else []))
    followed = [_Followed(replica_of(path), path) for path in chosen_files(directory, replicas)]
    await asyncio.to_thread(lambda: [f.start_at_tail(tail) for f in followed])
    for each in followed:  # what is there now, file after file
        while lines := await asyncio.to_thread(each.read):
            yield _joined(each, lines, len(followed) > 1)
    scanned = asyncio.get_running_loop().time()
    while follow and not stopped():
        await asyncio.sleep(poll_s)
        if not replicas and asyncio.get_running_loop().time() - scanned >= scan_s:  # replicas started since
            scanned = asyncio.get_running_loop().time()
            found = set(await asyncio.to_thread(lambda: list(directory.glob(f"*{_SUFFIX}"))))
            followed += [_Followed(replica_of(path), path) for path in sorted(found - known)]
            known |= found
        for each in followed:
            if lines := await asyncio.to_thread(each.read):
                yield _joined(each, lines, len(followed) > 1)


def _joined(followed: _Followed, lines: list[bytes], prefixed: bool) -> bytes:
    if not prefixed:
        return b"".join(line + b"\n" for line in lines)
    prefix = f"[{followed.replica}] ".encode()
    return b"".join(prefix + line + b"\n" for line in lines)
