"""`wharf serve` of an archive bomb (made here: megabytes of zeros that compress to kilobytes, or countless empty
files): the server refuses it at the limit, names the archive and the setting, and leaves nothing in the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT
from tests.unit.storage.test_archive import write_zeros_tar, write_zeros_zip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.mark.parametrize(
    ("name", "limit", "refusal"),
    [
        ("model.tar.gz", "WHARF_STORAGE_MAX_UNPACKED_BYTES", "unpacks to more than 1048576 bytes"),
        ("model.zip", "WHARF_STORAGE_MAX_UNPACKED_BYTES", "unpacks to more than 1048576 bytes"),
        ("files.tgz", "WHARF_STORAGE_MAX_UNPACKED_FILES", "holds more than 1000 files"),
    ],
)
def test_an_archive_bomb_is_refused_and_leaves_nothing(tmp_path: Path, name: str, limit: str, refusal: str) -> None:
    archive = tmp_path / name
    if name == "model.zip":
        write_zeros_zip(archive, 64 * 2**20)
    elif name == "files.tgz":
        write_zeros_tar(archive, {f"f{i}.txt": 0 for i in range(20_000)})
    else:
        write_zeros_tar(archive, {"model.joblib": 64 * 2**20})
    cache = tmp_path / "cache"
    env = {
        **os.environ,
        "WHARF_STORAGE_CACHE_DIR": str(cache),
        "WHARF_STORAGE_MAX_UNPACKED_BYTES": str(2**20),
        "WHARF_STORAGE_MAX_UNPACKED_FILES": "1000",
    }
    command = [sys.executable, "-m", "wharf.cli", "serve", str(archive), "--http-port", "0", "--grpc-port", "0"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=45)
    assert done.returncode != 0
    assert f"archive {name} {refusal} ({limit})" in done.stderr.splitlines()[-1]
    assert list(cache.rglob("*")) == []  # no partial entry, nor its directory
