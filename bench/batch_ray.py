"""`wharf batch` on this machine against Ray Data's `map_batches` on the same machine and job, and `wharf batch --ray`.

    .venv/bin/python bench/batch_ray.py [--rows 200000] [--chunk-rows 50000] [--workers N] [--models logistic]

The job is bench/batch.py's (the same inputs and models): score every row of an iris-like CSV and Parquet file and
write ids and predictions in the input's format. Three ways, each with `workers` processes and `chunk-rows` rows
per batch:
- `wharf batch` as the command, as bench/batch.py runs it (process start, model load and manifest included);
- Ray Data as its users write it: `ray.data.read_csv` (or `read_parquet`), `map_batches` with a callable class that
  loads Wharf's predictor once per actor (`batch_format="pyarrow"`, an actor pool of `workers` taking half a CPU
  each, leaving room for the read and write tasks), then
  `write_csv` (or `write_parquet`);
- `wharf batch --ray` (ray_job.py) on the same Ray instance.
The Ray instance (`ray.init(num_cpus=workers)`) is started once, before any timing: its start is not counted
against Ray, which makes the ratios favour Ray. Each line prints rows/s and the ratio local wharf / Ray Data.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch import make_inputs, make_models, wharf_batch  # noqa: E402 (bench/batch.py, beside this file)


#: An actor's share of a CPU: with whole CPUs, `workers` actors take every CPU of `ray.init(num_cpus=workers)` and
#: the read and write tasks wait for one forever.
ACTOR_CPUS = 0.5


class WharfPredict:
    """A Ray Data actor: Wharf's predictor loaded once, then each batch predicted (its ids numbered in the batch:
    Ray Data's readers give rows no position in the input)."""

    def __init__(self, model: str, batch_size: int) -> None:
        from wharf.batch.predictor import load_predictor

        self.predictor = load_predictor(model, batch_size=batch_size)

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch = batch.append_column("id", pa.array(np.arange(len(batch))))
        return self.predictor.predict_table(batch, None, [], "id")


def ray_data(model: Path, source: Path, fmt: str, out: Path, workers: int, chunk_rows: int) -> float:
    import ray

    started = time.perf_counter()
    dataset = ray.data.read_csv(str(source)) if fmt == "csv" else ray.data.read_parquet(str(source))
    predicted = dataset.map_batches(
        WharfPredict,
        fn_constructor_args=(str(model), chunk_rows),
        batch_size=chunk_rows,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=ACTOR_CPUS,
    )
    predicted.write_csv(str(out)) if fmt == "csv" else predicted.write_parquet(str(out))
    return time.perf_counter() - started


def wharf_on_ray(model: Path, source: Path, out: Path, workers: int, chunk_rows: int) -> float:
    from wharf.batch import ray_job
    from wharf.batch.job import JobSpec

    started = time.perf_counter()
    spec = JobSpec(model=str(model), input=str(source), output=str(out), chunk_rows=chunk_rows, batch_size=chunk_rows)
    summary = ray_job.run(spec, "auto", workers, stream=open(os.devnull, "w"))
    if summary.failed_chunks:
        raise SystemExit(f"wharf batch --ray: chunks failed: {summary.failed_chunks}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--models", default="logistic", help="comma-separated: logistic, forest")
    args = parser.parse_args()
    import ray

    ray.init(
        address="local", num_cpus=args.workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        with tempfile.TemporaryDirectory() as temporary:
            directory = Path(temporary)
            inputs, models = make_inputs(directory, args.rows, args.chunk_rows), make_models(directory)
            print(f"{args.rows} rows, chunks of {args.chunk_rows}, {args.workers} workers", flush=True)
            for model_name in args.models.split(","):
                model = models[model_name]
                for fmt, source in inputs.items():
                    tag = f"{model_name}-{fmt}"
                    local, _ = wharf_batch(model, source, directory / f"wharf-{tag}", args.workers, args.chunk_rows)
                    data = ray_data(model, source, fmt, directory / f"ray-{tag}", args.workers, args.chunk_rows)
                    on_ray = wharf_on_ray(model, source, directory / f"on-ray-{tag}", args.workers, args.chunk_rows)
                    print(
                        f"{model_name:8} {fmt:7}  wharf batch {args.rows / local:>10,.0f} rows/s ({local:6.2f} s)  "
                        f"Ray Data map_batches {args.rows / data:>10,.0f} rows/s ({data:6.2f} s)  "
                        f"wharf batch --ray {args.rows / on_ray:>10,.0f} rows/s ({on_ray:6.2f} s)  "
                        f"ratio wharf/Ray Data {data / local:.2f}",
                        flush=True,
                    )
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
