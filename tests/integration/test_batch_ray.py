"""`wharf batch --ray` on a local multi-node Ray cluster (two nodes of one CPU each, started and shut down by the
module): the same parts, ids, order, bad rows and manifest as the local run, byte for byte; a resumed local run
finished on Ray; a model that does not load fails every chunk.

Ray is bound to 127.0.0.1: with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 every node (and the driver) takes the loopback
address as its own, as Ray does on a laptop. Ray reads that setting when it is imported, so the module imports Ray
only once it is set. The cluster must start: there is no skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from tests.integration.conftest import HELPERS
from tests.processes import ROOT
from wharf.batch import job, ray_job, runner
from wharf.batch.job import JobSpec

pytestmark = pytest.mark.slow
OBJECT_STORE_BYTES = 100 * 2**20
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
ROWS = 120


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and a worker node on this machine; its address."""
    saved = {key: os.environ.get(key) for key in LOOPBACK}
    os.environ.update(LOOPBACK)
    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES, "node_ip_address": "127.0.0.1"}
    started = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        started.add_node(**node)
        started.wait_for_nodes()
        yield started.address
    finally:
        ray.shutdown()
        started.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 iris rows, two of them bad (a value that does not parse, a missing column)."""
    features = np.resize(load_iris().data, (ROWS, 4))
    lines = ["a,b,c,d", *(",".join(map(str, row)) for row in features)]
    lines[31], lines[77] = "5.1,three,1.4,0.2", "5.1,3.5,1.4"
    path = tmp_path_factory.mktemp("ray-input") / "iris.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def spec(model: Path | str, source: Path, output: Path) -> JobSpec:
    return JobSpec(model=str(model), input=str(source), output=str(output), chunk_rows=25, batch_size=8)


def outputs(directory: Path) -> dict[str, bytes]:
    """Every file of an output but its manifest, and the manifest less its output's name."""
    files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != job.MANIFEST}
    manifest = json.loads((directory / job.MANIFEST).read_text())
    manifest["job"].pop("output")
    return files | {job.MANIFEST: json.dumps(manifest).encode()}


def test_the_cluster_has_two_nodes(cluster: str) -> None:
    import ray

    ray_job.connect(cluster)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    assert ray.cluster_resources()["CPU"] == 2


def test_ray_writes_what_the_local_run_writes(cluster: str, iris_model: Path, iris_csv: Path, tmp_path: Path) -> None:
    local = runner.run(spec(iris_model, iris_csv, tmp_path / "local"), workers=2)
    on_ray = ray_job.run(spec(iris_model, iris_csv, tmp_path / "ray"), cluster, workers=2)
    assert (on_ray.rows, on_ray.bad_rows, on_ray.failed_chunks) == (local.rows, local.bad_rows, []) == (ROWS - 2, 2, [])
    written = outputs(tmp_path / "ray")
    assert written == outputs(tmp_path / "local")
    assert [name for name in written if name.startswith("part-")] == [f"part-{i:06d}.csv" for i in range(5)]
    errors = [json.loads(line)["row"] for line in written[job.ERRORS].splitlines()]
    assert errors == [30, 76]


def test_ray_finishes_a_local_run_that_stopped(cluster: str, iris_model: Path, iris_csv: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    runner.run(spec(iris_model, iris_csv, whole), workers=1)
    stopped = tmp_path / "stopped"
    runner.run(spec(iris_model, iris_csv, stopped), workers=1)
    manifest = json.loads((stopped / job.MANIFEST).read_text())
    for index in ("1", "3"):  # as if the job had stopped before these chunks were recorded
        del manifest["done"][index]
        (stopped / f"part-00000{index}.csv").unlink()
    (stopped / job.MANIFEST).write_text(json.dumps(manifest))
    resumed = ray_job.run(spec(iris_model, iris_csv, stopped), cluster, workers=2)
    assert resumed.rows == ROWS - 2
    assert {k: v for k, v in outputs(stopped).items()} == outputs(whole)


def test_a_model_that_does_not_load_fails_every_chunk(cluster: str, iris_csv: Path, tmp_path: Path) -> None:
    failed = ray_job.run(spec(tmp_path / "missing.joblib", iris_csv, tmp_path / "out"), cluster, workers=2)
    assert failed.rows == 0 and failed.failed_chunks == [0, 1, 2, 3, 4]


def test_the_command_runs_on_ray(cluster: str, iris_model: Path, iris_csv: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "wharf.cli", "batch", str(iris_model), str(iris_csv), str(tmp_path / "cli")]
    command += ["--chunk-rows", "25", "--batch-size", "8", "--ray", cluster]
    env = {**os.environ, **LOOPBACK, "PYTHONPATH": str(HELPERS)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 3, done.stderr  # done, with bad rows set aside
    assert "118 rows predicted, 2 bad row(s)" in done.stderr
    runner.run(spec(iris_model, iris_csv, tmp_path / "local"), workers=1)
    assert outputs(tmp_path / "cli") == outputs(tmp_path / "local")
