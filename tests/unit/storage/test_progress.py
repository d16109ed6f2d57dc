"""Download progress: when `downloading model` lines are logged, and that fsspec's transfers feed them."""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from wharf.storage.artifact import Artifact
from wharf.storage.progress import EVENT, DownloadProgress
from wharf.storage.settings import StorageSettings

pytestmark = pytest.mark.timeout(10)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int | None]]:
    """(bytes_done, bytes_total) of each `downloading model` line logged."""
    return [(r.bytes_done, r.bytes_total) for r in caplog.records if r.getMessage() == EVENT]  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wharf.storage")


def test_a_line_at_the_start_every_tenth_and_at_the_end(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with DownloadProgress("http://h/model.json", 1000, clock=clock) as progress:
        for _ in range(40):  # 25 bytes at a time, faster than a second
            progress.file().relative_update(25)
    done = [d for d, _ in lines(caplog)]
    assert done == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    assert {total for _, total in lines(caplog)} == {1000}


def test_a_slow_download_logs_at_most_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with DownloadProgress("http://h/model.json", 10_000, clock=clock) as progress:
        file = progress.file()
        for _ in range(10):  # 10 bytes every 0.4 s: never a tenth, a line each time a second has passed
            clock.now += 0.4
            file.relative_update(10)
    assert [d for d, _ in lines(caplog)] == [0, 30, 60, 90, 100]


def test_an_unknown_total_is_logged_as_null(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with DownloadProgress("http://h/model.json", None, clock=clock) as progress:
        clock.now += 2
        progress.file().relative_update(7)
    assert lines(caplog) == [(0, None), (7, None)]


def test_a_failed_download_logs_no_last_line(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(OSError), DownloadProgress("http://h/model.json", 100, clock=Clock()) as progress:
        progress.file().relative_update(5)
        raise OSError("reset")
    assert lines(caplog) == [(0, 100)]


def test_the_uri_is_logged_without_its_secrets(caplog: pytest.LogCaptureFixture) -> None:
    with DownloadProgress("https://user:pass@h/model.json?sig=t0ken", 1, clock=Clock()):
        pass
    [record] = [r for r in caplog.records if r.getMessage() == EVENT]
    assert record.uri == "https://h/model.json"  # type: ignore[attr-defined]


@pytest.fixture
def memory() -> MemoryFileSystem:
    return MemoryFileSystem()


@pytest.fixture
def root(memory: MemoryFileSystem, tmp_path: Path) -> Iterator[str]:
    """A directory of the (process-wide) memory filesystem of this test's own."""
    yield f"/{tmp_path.name}"
    memory.rm(f"/{tmp_path.name}", recursive=True)


def test_a_prefix_counts_the_bytes_of_every_file(
    memory: MemoryFileSystem, root: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    memory.pipe({f"{root}/iris/model.json": b"m" * 3000, f"{root}/iris/assets/labels.txt": b"l" * 1000})
    artifact = Artifact.find(memory, f"{root}/iris")
    assert artifact.size == 4000
    with DownloadProgress("memory://models/iris", artifact.size) as progress:
        artifact.download(tmp_path, StorageSettings(), progress)
    assert (tmp_path / "model.json").read_bytes() == b"m" * 3000
    assert lines(caplog)[0] == (0, 4000) and lines(caplog)[-1] == (4000, 4000)


def test_an_archive_counts_its_bytes_as_they_arrive(
    memory: MemoryFileSystem, root: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"model"))
    memory.pipe(f"{root}/iris.tar.gz", packed.getvalue())
    artifact = Artifact.find(memory, f"{root}/iris.tar.gz")
    with DownloadProgress("memory://models/iris.tar.gz", artifact.size) as progress:
        artifact.download(tmp_path, StorageSettings(), progress)
    assert (tmp_path / "model.json").read_bytes() == b"model"
    assert lines(caplog)[-1] == (len(packed.getvalue()), len(packed.getvalue()))


def test_a_store_that_does_not_say_a_size_has_no_total(memory: MemoryFileSystem) -> None:
    artifact = Artifact(memory, {"model.json": {"name": "/m", "type": "file", "size": None}}, single=True)
    assert artifact.size is None
