"""Reading a replica's log file: the model server's `serving` line (its ports), its `downloading model` lines
(how far the fetch of its model has got) and the last lines for errors."""

from __future__ import annotations

from pathlib import Path

import orjson

from wharf.storage.progress import EVENT as DOWNLOADING

_READ_BYTES = 1 << 20
_MAX_LINE_BYTES = 1 << 16
_TAIL_BYTES_PER_LINE = 4096


def serving_ports(line: str | bytes) -> tuple[int, int] | None:
    """(HTTP port, gRPC port) from the model server's `{"event": "serving", ...}` line; None for other lines."""
    if b'"serving"' not in (line if isinstance(line, bytes) else line.encode()):
        return None
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("event") != "serving":
        return None
    ports = doc.get("http_port"), doc.get("grpc_port")
    if all(type(p) is int and 0 < p < 65536 for p in ports):
        return ports  # type: ignore[return-value]
    return None


def download_progress(line: bytes) -> str | None:
    """What the model server's `downloading model` line says, for a person: `downloading model 40% of 1.2 GB`
    (`downloading model: 12.3 MB so far` when the store gave no size); None for other lines."""
    if b'"downloading model"' not in line:
        return None
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("event") != DOWNLOADING:
        return None
    done, total = doc.get("bytes_done"), doc.get("bytes_total")
    if type(done) is not int or done < 0 or not (total is None or (type(total) is int and total >= 0)):
        return None
    if not total:
        return f"{DOWNLOADING}: {_size(done)} so far"
    return f"{DOWNLOADING} {min(done * 100 // total, 100)}% of {_size(total)}"


def _size(count: int) -> str:
    """A number of bytes in decimal units, as downloads are usually shown (`512 B`, `2.4 MB`, `1.2 GB`)."""
    size, unit = float(count), "B"
    for larger in ("kB", "MB", "GB", "TB"):
        if size < 1000:
            break
        size, unit = size / 1000, larger
    return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"


class LogFollower:
    """The complete lines appended to a file after `offset`, read as they arrive (the file may not exist yet)."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self._partial = b""

    def new_lines(self) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(_READ_BYTES)
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, rest = (self._partial + data).split(b"\n")
        self._partial = rest[-_MAX_LINE_BYTES:]  # only short lines matter here
        return lines


def last_lines(path: Path, offset: int, count: int) -> str:
    """The last `count` lines of the file after `offset` that may tell why a replica ended ("" when there are
    none): routine records (JSON lines at level info or debug, what a working server logs) are left out."""
    try:
        with open(path, "rb") as f:
            start = max(offset, f.seek(0, 2) - count * _TAIL_BYTES_PER_LINE)
            f.seek(start)
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    if start > offset:
        lines = lines[1:]  # the first one is cut
    return "\n".join([line for line in lines if not _routine(line)][-count:])


def _routine(line: str) -> bool:
    if not line.startswith("{") or '"level":"' not in line:
        return False
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and record.get("level") in ("info", "debug")
