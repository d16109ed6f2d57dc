"""`wharf batch isvc/NAME` on `wharf up`: every row scored through the gateway by a running InferenceService, its
transformer included (one daemon for the module)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from tests.e2e.conftest import Daemon, ready, start_daemon
from tests.e2e.test_transformers import scaled


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start_daemon(tmp_path_factory.mktemp("batch") / "home")
    yield running
    running.stop()


@pytest.mark.slow
def test_a_table_scored_through_an_inference_service_and_its_transformer(daemon: Daemon, tmp_path: Path) -> None:
    daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=10))
    daemon.wait("scaled", ready)
    source = tmp_path / "in.csv"
    pa_csv.write_csv(pa.table({"x": [float(i) for i in range(250)], "name": [f"r{i}" for i in range(250)]}), source)

    # x * 3 in the transformer, + 10 in the predictor; 25 requests of 10 rows, 4 at a time per worker
    done = daemon.wharf(
        "batch", "isvc/scaled", str(source), str(tmp_path / "out"), "--batch-size", "10", "--chunk-rows", "100",
        "--workers", "2", "--keep", "name", "--output", "y",
    )  # fmt: skip
    assert "250 rows predicted, 0 bad row(s)" in done.stderr
    scored = pa.concat_tables(pa_csv.read_csv(p) for p in sorted((tmp_path / "out").glob("part-*.csv")))
    assert scored.column_names == ["id", "name", "y_0"]
    assert scored.column("id").to_pylist() == list(range(250))
    assert scored.column("name").to_pylist() == [f"r{i}" for i in range(250)]
    assert scored.column("y_0").to_pylist() == [3.0 * i + 10 for i in range(250)]
    assert json.loads((tmp_path / "out/manifest.json").read_text())["chunks"] == 3

    missing = daemon.wharf("batch", "isvc/nope", str(source), str(tmp_path / "none"), "--workers", "1", check=False)
    assert missing.returncode == 1 and "did not load" in missing.stderr, missing.stderr
