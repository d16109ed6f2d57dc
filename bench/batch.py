"""`wharf batch` against the tight-loop limit on the same cores: iris LogisticRegression and a 100-tree forest, on
CSV and on Parquet.

    .venv/bin/python bench/batch.py [--rows 200000] [--chunk-rows 50000] [--workers N] [--dir DIR]
    .venv/bin/python bench/batch.py --rows 10000000 --chunk-rows 250000     # the issue's size
    .venv/bin/python bench/batch.py --rows 10000000 --chunk-rows 250000 --models logistic --formats parquet --repeat 3

The input is iris-like (rows drawn from iris's 150, with noise), written once as CSV and as Parquet (one row group per
chunk). The tight loop is the least any batch scorer must do, with no Wharf code: one process per worker, each taking
a chunk (a CSV byte range of whole lines, found by one scan of the file, or a Parquet row group), reading it with
pyarrow, calling the estimator's `predict` on it whole, and writing the row numbers and predictions as a part in the
input's format. `wharf batch` runs as the command (process start, model load, manifest included) with the same
workers and chunk size, and its default batch size (for these scikit-learn models: each chunk whole). Each line
prints both rows/s and the ratio wharf / tight loop; both wall times count everything from start to the last part
written. On a machine that other work loads, the CPU seconds each side used (its processes' user and system time:
the loop's from this process and its pool, wharf's from the command and its workers) are printed too: they move
less with that load than wall times do. The loop calls the framework as it comes (OpenBLAS: a thread per core in
each process); `wharf batch` keeps each worker's BLAS to its share of the cores (runner.py), which
`--loop-blas-threads 1` gives the loop too (the stricter limit).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[1]


def make_inputs(directory: Path, rows: int, chunk_rows: int) -> dict[str, Path]:
    features, _ = load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    data = features[rng.integers(0, len(features), rows)] + rng.normal(0, 0.05, (rows, 4))
    table = pa.table({f"f{i}": data[:, i] for i in range(4)})
    paths = {"csv": directory / "iris.csv", "parquet": directory / "iris.parquet"}
    pa_csv.write_csv(table, paths["csv"])
    pq.write_table(table, paths["parquet"], row_group_size=chunk_rows)
    return paths


def make_models(directory: Path) -> dict[str, Path]:
    features, labels = load_iris(return_X_y=True)
    models = {
        "logistic": LogisticRegression(max_iter=1000),
        "forest": RandomForestClassifier(n_estimators=100, random_state=0),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = directory / f"{name}.joblib"
        joblib.dump(model.fit(features, labels), paths[name])
    return paths


# -- the tight loop ---------------------------------------------------------------------------------------------

_model = None
_limits = None


def _load(path: str, blas_threads: int) -> None:
    global _model, _limits
    _model = joblib.load(path)
    if blas_threads:
        from threadpoolctl import threadpool_limits

        _limits = threadpool_limits(blas_threads)


def _csv_ranges(path: Path, chunk_rows: int) -> list[tuple[int, int, int]]:
    data = np.fromfile(path, np.uint8)
    ends = np.flatnonzero(data == 10) + 1
    header_end, ends = int(ends[0]), ends[1:]
    ranges, start = [], header_end
    for i in range(0, len(ends), chunk_rows):
        stop = int(ends[min(i + chunk_rows, len(ends)) - 1])
        ranges.append((start, stop, i))
        start = stop
    return ranges


def _tight_csv(task: tuple[str, bytes, int, int, int, str]) -> int:
    path, header, start, stop, first, out = task
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(stop - start)
    table = pa_csv.read_csv(io.BytesIO(header + data), read_options=pa_csv.ReadOptions(use_threads=False))
    predicted = _model.predict(np.column_stack([c.to_numpy() for c in table.columns]))  # type: ignore[union-attr]
    result = pa.table({"id": np.arange(first, first + len(table)), "predict": predicted})
    pa_csv.write_csv(result, out)
    return len(table)


def _tight_parquet(task: tuple[str, int, int, str]) -> int:
    path, group, first, out = task
    table = pq.ParquetFile(path).read_row_group(group, use_threads=False)
    predicted = _model.predict(np.column_stack([c.to_numpy() for c in table.columns]))  # type: ignore[union-attr]
    pq.write_table(pa.table({"id": np.arange(first, first + len(table)), "predict": predicted}), out)
    return len(table)


def cpu_seconds() -> float:
    """User and system time used so far by this process and its waited-for children (and theirs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def tight_loop(
    model: Path, source: Path, fmt: str, out: Path, workers: int, chunk_rows: int, blas_threads: int = 0
) -> tuple[float, float]:
    """Wall and CPU seconds of the tight loop (`blas_threads` threads for BLAS and OpenMP; 0: as they come)."""
    started, cpu = time.perf_counter(), cpu_seconds()
    out.mkdir()
    if fmt == "csv":
        header = source.open("rb").readline()
        ranges = _csv_ranges(source, chunk_rows)
        tasks = [(str(source), header, a, b, first, str(out / f"{i}.csv")) for i, (a, b, first) in enumerate(ranges)]
        work = _tight_csv
    else:
        metadata = pq.ParquetFile(source).metadata
        firsts = np.cumsum([0] + [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)])
        tasks = [(str(source), g, int(firsts[g]), str(out / f"{g}.parquet")) for g in range(metadata.num_row_groups)]
        work = _tight_parquet  # type: ignore[assignment]
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_load, initargs=(str(model), blas_threads)) as pool:
        sum(pool.imap_unordered(work, tasks))
    return time.perf_counter() - started, cpu_seconds() - cpu


def wharf_batch(model: Path, source: Path, out: Path, workers: int, chunk_rows: int) -> tuple[float, float]:
    """Wall and CPU seconds of `wharf batch` as the command."""
    started, cpu = time.perf_counter(), cpu_seconds()
    command = [sys.executable, "-m", "wharf.cli", "batch", str(model), str(source), str(out)]
    command += ["--workers", str(workers), "--chunk-rows", str(chunk_rows)]  # the default batch size: the model's
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"wharf batch exited with {done.returncode}:\n{done.stderr}")
    return time.perf_counter() - started, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dir", type=Path, default=None, help="where inputs and outputs go (default: a temporary one)")
    parser.add_argument("--models", default="logistic,forest", help="comma-separated: logistic, forest")
    parser.add_argument("--formats", default="csv,parquet", help="comma-separated: csv, parquet")
    parser.add_argument("--repeat", type=int, default=1, help="times each pair is measured, one after the other")
    parser.add_argument("--loop-blas-threads", type=int, default=0, help="the loop's BLAS threads (0: as they come)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        directory = args.dir or Path(temporary)
        directory.mkdir(parents=True, exist_ok=True)
        inputs, models = make_inputs(directory, args.rows, args.chunk_rows), make_models(directory)
        print(f"{args.rows} rows, chunks of {args.chunk_rows}, {args.workers} workers")
        pairs = [(m, f) for m in args.models.split(",") for f in args.formats.split(",")] * args.repeat
        for run, (model_name, fmt) in enumerate(pairs):
            model, source, tag = models[model_name], inputs[fmt], f"{model_name}-{fmt}-{run}"
            tight, tight_cpu = tight_loop(
                model, source, fmt, directory / f"tight-{tag}", args.workers, args.chunk_rows, args.loop_blas_threads
            )
            wharf, wharf_cpu = wharf_batch(model, source, directory / f"wharf-{tag}", args.workers, args.chunk_rows)
            print(
                f"{model_name:8} {fmt:7}  tight loop {args.rows / tight:>11,.0f} rows/s ({tight:6.2f} s, "
                f"{tight_cpu:6.2f} cpu s)  wharf batch {args.rows / wharf:>11,.0f} rows/s ({wharf:6.2f} s, "
                f"{wharf_cpu:6.2f} cpu s)  ratio {tight / wharf:.2f} (cpu {tight_cpu / wharf_cpu:.2f})",
                flush=True,
            )
            shutil.rmtree(directory / f"tight-{tag}")
            shutil.rmtree(directory / f"wharf-{tag}")


if __name__ == "__main__":
    main()
