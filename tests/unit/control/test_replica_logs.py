"""A revision's replica logs as one stream: tails, prefixes, following, replicas started while it follows."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from wharf.control.replica_logs import CHUNK_BYTES, chosen_files, log_stream


def _write(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.writelines(line + "\n" for line in lines)


async def _read(directory: Path, replicas: list[str], tail: int | None) -> bytes:
    return b"".join([chunk async for chunk in log_stream(directory, replicas, tail, False, lambda: False)])


def test_the_last_lines_of_one_replica_or_of_several_prefixed(tmp_path: Path) -> None:
    _write(tmp_path / "a.log", *(f"a{i}" for i in range(5)))
    _write(tmp_path / "b.log", "b0", "b1")
    assert asyncio.run(_read(tmp_path, ["a"], 2)) == b"a3\na4\n"
    assert asyncio.run(_read(tmp_path, ["a"], None)) == b"".join(f"a{i}\n".encode() for i in range(5))
    assert asyncio.run(_read(tmp_path, ["a"], 0)) == b""
    assert asyncio.run(_read(tmp_path, ["a", "b"], 1)) == b"[a] a4\n[b] b1\n"
    assert asyncio.run(_read(tmp_path, ["a"], 50)).count(b"\n") == 5


def test_a_tail_reaches_back_over_many_blocks(tmp_path: Path) -> None:
    line = "x" * 1000
    _write(tmp_path / "a.log", *(f"{i} {line}" for i in range(300)))
    lines = asyncio.run(_read(tmp_path, ["a"], 150)).splitlines()
    assert len(lines) == 150 and lines[0].startswith(b"150 ") and lines[-1].startswith(b"299 ")


def test_without_replicas_the_latest_file_is_shown(tmp_path: Path) -> None:
    assert chosen_files(tmp_path / "missing", []) == []
    _write(tmp_path / "old.log", "old")
    _write(tmp_path / "new.log", "new")
    os.utime(tmp_path / "new.log", (1, 1))  # written long ago
    assert chosen_files(tmp_path, []) == [tmp_path / "old.log"]


def test_a_long_line_is_cut_not_held(tmp_path: Path) -> None:
    _write(tmp_path / "a.log", "y" * (CHUNK_BYTES * 2))
    lines = asyncio.run(_read(tmp_path, ["a"], None)).splitlines()
    assert b"".join(lines) == b"y" * (CHUNK_BYTES * 2)


def test_following_shows_new_lines_and_new_replicas_until_stopped(tmp_path: Path) -> None:
    _write(tmp_path / "a.log", "a0")

    async def follow() -> list[bytes]:
        stop = asyncio.Event()
        got: list[bytes] = []
        stream = log_stream(tmp_path, [], None, True, stop.is_set, poll_s=0.01, scan_s=0.01)

        async def read() -> None:
            async for chunk in stream:
                got.append(chunk)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.1)
        _write(tmp_path / "a.log", "a1")
        await asyncio.sleep(0.1)
        _write(tmp_path / "b.log", "b0")  # a replica started while following
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(reader, 5)
        return got

    assert asyncio.run(follow()) == [b"a0\n", b"a1\n", b"[b] b0\n"]
