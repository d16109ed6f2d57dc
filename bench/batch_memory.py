"""`wharf batch`'s memory against its input's size: the resident memory of the job (its parent process and every
worker, summed) sampled through the run, for inputs of a few sizes.

    .venv/bin/python bench/batch_memory.py [--gb 1,10] [--format csv] [--chunk-rows 100000] [--workers N]

Each input is an iris-like table (bench/batch.py's rows) written as CSV (or Parquet) in a temporary directory until
it holds about that many GB, then scored by `wharf batch` with the iris LogisticRegression as the command, default
batch size, and deleted with its output. Every 0.1 s the script adds up the RSS (Linux's /proc/PID/status VmRSS) of
the `wharf batch` process and of all its descendants; each line prints the input's size and rows, the wall time and
rows/s, and the peak of that sum, of the parent alone and of the largest worker. A sum of RSS counts the pages the
processes share (the interpreter, numpy, scikit-learn) once per process: it overstates what the job holds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sklearn.datasets import load_iris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch import ROOT, make_models  # noqa: E402 (bench/batch.py, beside this file)

_WRITE_ROWS = 1_000_000  # rows generated and written at a time
_SAMPLE_S = 0.1


def make_input(path: Path, fmt: str, size_bytes: int) -> int:
    """Write iris-like rows at `path` until it holds about `size_bytes`; the number of rows written."""
    features, _ = load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    schema = pa.schema([(f"f{i}", pa.float64()) for i in range(4)])
    writer = pa_csv.CSVWriter(path, schema) if fmt == "csv" else pq.ParquetWriter(path, schema)
    rows = 0
    with writer:
        while path.stat().st_size < size_bytes:
            data = features[rng.integers(0, len(features), _WRITE_ROWS)] + rng.normal(0, 0.05, (_WRITE_ROWS, 4))
            writer.write_table(pa.table({f"f{i}": data[:, i] for i in range(4)}, schema=schema))
            rows += _WRITE_ROWS
    return rows


def _rss(pid: int) -> int:
    """VmRSS of `pid` in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


@dataclass
class Peaks:
    total: int = 0
    parent: int = 0
    worker: int = 0
    processes: int = 0


def score(model: Path, source: Path, out: Path, workers: int, chunk_rows: int) -> tuple[float, Peaks]:
    """Run `wharf batch` on `source`, sampling its processes' RSS until it exits: wall time and peaks."""
    command = [sys.executable, "-m", "wharf.cli", "batch", str(model), str(source), str(out)]
    command += ["--workers", str(workers), "--chunk-rows", str(chunk_rows)]
    peaks = Peaks()
    started = time.perf_counter()
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while job.poll() is None:
            workers_rss = [_rss(p) for p in _descendants(job.pid)]
            parent = _rss(job.pid)
            peaks.total = max(peaks.total, parent + sum(workers_rss))
            peaks.parent = max(peaks.parent, parent)
            peaks.worker = max([peaks.worker, *workers_rss])
            peaks.processes = max(peaks.processes, 1 + len(workers_rss))
            time.sleep(_SAMPLE_S)
        _, errors = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait(timeout=60)
    if job.returncode != 0:
        raise SystemExit(f"wharf batch exited with {job.returncode}:\n{errors}")
    return time.perf_counter() - started, peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", default="1,10", help="input sizes in GB, comma-separated")
    parser.add_argument("--format", default="csv", choices=["csv", "parquet"])
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dir", type=Path, default=None, help="where inputs and outputs go (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as temporary:
        directory = Path(temporary)
        model = make_models(directory)["logistic"]
        print(f"chunks of {args.chunk_rows} rows, {args.workers} workers, {args.format}", flush=True)
        for gb in (float(g) for g in args.gb.split(",")):
            source, out = directory / f"input.{args.format}", directory / "out"
            made = time.perf_counter()
            rows = make_input(source, args.format, int(gb * 1e9))
            size, made = source.stat().st_size, time.perf_counter() - made
            wall, peaks = score(model, source, out, args.workers, args.chunk_rows)
            print(
                f"{size / 1e9:6.2f} GB {rows:>12,} rows (written in {made:5.0f} s)  wharf batch {wall:6.1f} s "
                f"{rows / wall:>10,.0f} rows/s  peak RSS: all {peaks.processes} processes {peaks.total / 2**20:6.0f} "
                f"MiB, parent {peaks.parent / 2**20:4.0f} MiB, largest worker {peaks.worker / 2**20:4.0f} MiB",
                flush=True,
            )
            source.unlink()
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
