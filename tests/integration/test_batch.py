"""`wharf batch` as a real command: every format in and out, S3 in and out (moto's server), resume after kill -9
of the job's process (its workers gone with it) compared byte for byte with an uninterrupted run, each worker's
BLAS threads, bad rows and failed chunks in the exit status."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import joblib
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_iris

from tests.integration.conftest import HELPERS
from tests.integration.test_storage import s3_endpoint, s3_environment  # noqa: F401 (the fixture)
from tests.processes import ROOT
from wharf import InferRequest, Model
from wharf.batch import formats

FEATURES, _ = load_iris(return_X_y=True)
RUN_TIMEOUT_S = 60


def wharf_batch(*args: str, env: dict[str, str] | None = None, check: int | None = 0) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "wharf.cli", "batch", *args]
    full_env = {**os.environ, "PYTHONPATH": str(HELPERS), **(env or {})}
    done = subprocess.run(command, capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=RUN_TIMEOUT_S)
    if check is not None:
        assert done.returncode == check, done.stderr
    return done


def iris_table(rows: int = 150) -> pa.Table:
    features = np.resize(FEATURES, (rows, 4))
    return pa.table({f"f{i}": features[:, i] for i in range(4)})


def read_parts(directory: Path, fmt: str) -> pa.Table:
    parts = sorted(directory.glob(f"part-*{formats.FORMATS[fmt]}"))
    source = formats.open_source(str(directory), fmt, formats.StorageSettings(), ("manifest.json", "errors.jsonl"))
    assert [p.name for p in parts] == [Path(f).name for f in source.files]
    tables = [formats.read_chunk(source, c)[0] for c in formats.plan(source, 10**9)]
    return pa.concat_tables(tables)


@pytest.mark.parametrize(
    ("fmt", "out_fmt"), [("csv", "parquet"), ("parquet", "jsonl"), ("jsonl", "npy"), ("npy", "csv")]
)
def test_every_format_in_and_out(iris_model: Path, tmp_path: Path, fmt: str, out_fmt: str) -> None:
    source = tmp_path / f"in{formats.FORMATS[fmt]}"
    fs, _ = formats.filesystem(str(tmp_path), formats.StorageSettings())
    formats.write_part(iris_table(), fs, str(source), fmt)
    out = tmp_path / "out"
    done = wharf_batch(
        str(iris_model), str(source), str(out), "--chunk-rows", "40", "--workers", "2" if fmt == "csv" else "1",
        "--output", "predict_proba,predict", "--output-format", out_fmt, "--batch-size", "16",
    )  # fmt: skip
    assert "150 rows predicted, 0 bad row(s)" in done.stderr
    chunks = 1 if fmt == "parquet" else 4  # Parquet is cut by row groups (it has one)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        *(f"part-{i:06d}.{out_fmt}" for i in range(chunks)),
    ]
    model = joblib.load(iris_model)
    table = read_parts(out, out_fmt)
    if out_fmt == "npy":  # no names: id, predict_proba_0..2, predict
        matrix = np.column_stack([c.to_numpy() for c in table.columns])
        ids, probabilities, labels = matrix[:, 0], matrix[:, 1:4], matrix[:, 4]
    else:
        assert table.column_names == ["id", "predict_proba_0", "predict_proba_1", "predict_proba_2", "predict"]
        ids, labels = table.column("id").to_numpy(), table.column("predict").to_numpy()
        probabilities = np.column_stack([table.column(f"predict_proba_{j}").to_numpy() for j in range(3)])
    assert ids.tolist() == list(range(150))
    np.testing.assert_allclose(probabilities, model.predict_proba(FEATURES))
    assert labels.tolist() == model.predict(FEATURES).tolist()


def test_s3_in_and_out(iris_model: Path, s3_endpoint: str, tmp_path: Path) -> None:  # noqa: F811
    env = s3_environment(s3_endpoint, tmp_path / "cache")
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        env[name] = str(tmp_path / "none")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                      region_name="us-east-1")  # fmt: skip
    s3.create_bucket(Bucket="tables")
    for part, rows in (("a", 100), ("b", 50)):
        table = iris_table(rows).append_column("name", pa.array([f"{part}{i}" for i in range(rows)]))
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        s3.put_object(Bucket="tables", Key=f"iris/{part}.parquet", Body=buffer.getvalue().to_pybytes())
    s3.upload_file(str(iris_model), "tables", "models/model.joblib")

    wharf_batch(
        "s3://tables/models/model.joblib", "s3://tables/iris", "s3://tables/scored", "--format", "parquet",
        "--output-format", "csv", "--keep", "name", "--workers", "2", env=env,
    )  # fmt: skip
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="tables", Prefix="scored/")["Contents"])
    assert keys == ["scored/manifest.json", "scored/part-000000.csv", "scored/part-000001.csv"]
    first = pa_csv.read_csv(pa.py_buffer(s3.get_object(Bucket="tables", Key=keys[1])["Body"].read()))
    assert first.column_names == ["id", "name", "predict"] and len(first) == 100
    assert first.column("name").to_pylist()[:2] == ["a0", "a1"]
    assert first.column("predict").to_pylist() == joblib.load(iris_model).predict(FEATURES[:100]).tolist()


def test_a_job_killed_half_way_leaves_no_worker_and_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    pa_csv.write_csv(iris_table(3000), source)
    args = ["wharf_test_models:RowSum", str(source), "--chunk-rows", "100", "--workers", "2", "--keep", "f0"]
    env = {"SLEEP_PER_ROW_S": "0.0005"}
    wharf_batch(args[0], args[1], str(tmp_path / "whole"), *args[2:], env=env)

    stopped = tmp_path / "stopped"
    command = [sys.executable, "-m", "wharf.cli", "batch", args[0], args[1], str(stopped), *args[2:]]
    job = subprocess.Popen(
        command, env={**os.environ, "PYTHONPATH": str(HELPERS), **env}, cwd=ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while len(finished(stopped)) < 5:
            assert job.poll() is None and time.monotonic() < deadline, "the job ended before it was killed"
            time.sleep(0.02)
        workers = children(job.pid)
        assert workers
        os.kill(job.pid, signal.SIGKILL)  # the job's process alone, as a crash or the OOM killer would
        job.wait(10)
        deadline = time.monotonic() + 15
        while alive := [pid for pid in workers if running(pid)]:
            assert time.monotonic() < deadline, f"workers {alive} outlived their job"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)  # whatever is left, when the test failed
    before = finished(stopped)
    assert 5 <= len(before) < 30

    done = wharf_batch(args[0], args[1], str(stopped), *args[2:], env=env)
    assert "3000 rows predicted" in done.stderr
    whole = {p.name: p.read_bytes() for p in (tmp_path / "whole").iterdir()}
    again = {p.name: p.read_bytes() for p in stopped.iterdir()}
    assert again.keys() == whole.keys()  # no temporary file left
    assert all(again[name] == whole[name] for name in whole if name != "manifest.json")  # every part, byte for byte
    assert finished(stopped) == finished(tmp_path / "whole")  # (the manifests name their own output directories)


class BlasThreads(Model):
    """Answers, for each row, how many threads its process's BLAS (numpy's) may run."""

    def predict(self, payload: InferRequest) -> np.ndarray:
        from threadpoolctl import threadpool_info

        threads = max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return np.full(len(payload.inputs[0].data), threads)


def test_each_worker_keeps_to_its_share_of_the_cores(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    pa_csv.write_csv(iris_table(), source)
    wharf_batch(f"{__name__}:BlasThreads", str(source), str(tmp_path / "out"), "--chunk-rows", "75", "--workers", "2")
    threads = set(read_parts(tmp_path / "out", "csv").columns[-1].to_pylist())  # the model's one output
    assert threads == {max(1, (os.cpu_count() or 1) // 2)}


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (one its new parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def finished(output: Path) -> dict[str, object]:
    try:
        return json.loads((output / "manifest.json").read_text())["done"]
    except (FileNotFoundError, ValueError):
        return {}


def test_bad_rows_go_to_the_error_file_and_failed_chunks_to_the_exit_status(iris_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("f0,f1,f2,f3\n5.1,3.5,1.4,0.2\n5.1,3.5\n6.3,x,4.9,1.5\n6.3,3.3,6,2.5\n")
    done = wharf_batch(str(iris_model), str(source), str(tmp_path / "out"), check=3)
    assert "2 rows predicted, 2 bad row(s)" in done.stderr
    assert (tmp_path / "out/part-000000.csv").read_text().splitlines() == ['"id","predict"', "0,0", "3,2"]
    errors = [json.loads(line) for line in (tmp_path / "out/errors.jsonl").read_text().splitlines()]
    assert errors == [
        {"row": 1, "reason": "2 values, expected 4"},
        {"row": 2, "reason": "column 'f1': 'x' is not double"},
    ]

    failed = wharf_batch("wharf_test_models:Broken", str(source), str(tmp_path / "broken"), check=1)
    assert "chunk 0 failed: the model failed twice: RuntimeError: boom" in failed.stderr
    assert "1 chunk(s) failed: [0]" in failed.stderr
