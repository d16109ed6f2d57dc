"""Running a batch job on this machine: its chunks across worker processes, each read, predicted and written on its
own, the manifest kept by this (the parent) process.

Each worker loads the predictor once and keeps its framework to its share of the cores (BLAS and OpenMP threads:
cores / workers; left alone, OpenBLAS runs a thread per core in every worker, and a logistic regression's predict
over 250,000 rows then takes 5-8 times the CPU time). It then takes chunks one at a time: it reads the chunk
(formats.py), adds the row numbers as the id column when the input has none, predicts (predictor.py), and writes
the chunk's part. A chunk whose prediction fails is tried once more; failing again, it is reported failed and the
job goes on. At most two chunks per worker are handed out at once, and only their descriptions cross between
processes, so memory stays about `chunk_rows` rows per worker whatever the input's size. The parent records each
finished chunk in the manifest (job.py) as it ends. Once the job is done a worker exits without tearing its
interpreter down. A worker dies with the job's process (on Linux, `PR_SET_PDEATHSIG`), so a job killed outright
(kill -9) leaves no worker behind, and its rerun resumes.
"""

from __future__ import annotations

import atexit
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import TextIO

import pyarrow as pa

from wharf.batch import formats, job
from wharf.batch.formats import BadRow, Chunk, Source
from wharf.batch.job import ChunkDone, JobSpec
from wharf.batch.predictor import Predictor, load_predictor
from wharf.batch.progress import Progress, Summary
from wharf.errors import WharfError
from wharf.storage.settings import StorageSettings


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker reports of one chunk: done (rows written, rows refused), or failed with a reason."""

    index: int
    rows: int
    bad: list[BadRow]
    failure: str | None = None


class _Worker:
    """A worker process's state: the input, the output, the predictor (loaded once, by `start_worker`)."""

    spec: JobSpec
    source: Source
    out_fs: object
    out_dir: str
    out_format: str
    predictor: Predictor | None = None
    load_error: str | None = None
    threads: object = None  # the limits on the model's thread pools, held for the worker's life


def start_worker(spec: JobSpec, source: Source, out_dir: str, out_format: str, threads: int) -> None:
    """Take this process's job, input, output and predictor (loaded once), its model's BLAS and OpenMP on `threads`
    threads: what the pool's initializer and each of `ray_job`'s actors calls, so that both run the same worker
    code."""
    from threadpoolctl import threadpool_limits

    settings = StorageSettings()
    _Worker.spec, _Worker.source, _Worker.out_dir, _Worker.out_format = spec, source, out_dir, out_format
    _Worker.out_fs, _ = formats.filesystem(spec.output, settings, create=True)
    try:
        _Worker.predictor = load_predictor(spec.model, runtime=spec.runtime, batch_size=spec.batch_size)
    except Exception as e:
        _Worker.load_error = _reason(e)
    _Worker.threads = threadpool_limits(threads)  # of the libraries the model loaded


def _start_pool_worker(
    job_pid: int, threads: int, spec: JobSpec, source: Source, out_dir: str, out_format: str
) -> None:
    """`start_worker`, for a process of this machine's pool, which dies with the job's process `job_pid` and leaves
    without tearing its interpreter down."""
    _die_with(job_pid)
    start_worker(spec, source, out_dir, out_format, threads)
    atexit.register(_leave)


_PR_SET_PDEATHSIG = 1  # prctl(2)


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or `taskset`'s share), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _die_with(parent_pid: int) -> None:
    """Have Linux kill this process (SIGKILL) when its parent, `parent_pid`, dies, or end it now if that has
    happened already (Linux only: elsewhere a worker waits on the pool's queue, whose pipe it holds both ends of,
    until it is killed).

    `PR_SET_PDEATHSIG` fires when the THREAD that created this process exits, not the parent process: it holds
    because `ProcessPoolExecutor` (spawn) starts its workers from the thread that submits to it, here `run`'s,
    which lives as long as the job. Running `run` in a short-lived thread, or `max_tasks_per_child` (workers
    replaced from the pool's management thread), would kill workers early or leave them unguarded."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def _leave() -> None:
    """End this worker at once (atexit): its parts are written and its outcomes sent, and tearing down an
    interpreter that imported a framework (scikit-learn, torch) takes up to a second, at the end of every job."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _reason(error: BaseException) -> str:
    return error.message if isinstance(error, WharfError) else f"{type(error).__name__}: {error}"


def process_chunk(chunk: Chunk) -> Outcome:
    """Read, predict and write one chunk (in a worker process)."""
    spec, predictor = _Worker.spec, _Worker.predictor
    if predictor is None:
        return Outcome(chunk.index, 0, [], f"the model did not load: {_Worker.load_error}")
    try:
        table, rows, bad = formats.read_chunk(_Worker.source, chunk)
        if spec.id_column not in table.column_names:
            table = table.append_column(spec.id_column, pa.array(rows, pa.int64()))
    except Exception as e:
        return Outcome(chunk.index, 0, [], f"reading it failed: {_reason(e)}")
    for attempt in (1, 2):
        try:
            predicted = predictor.predict_table(table, spec.outputs, spec.keep, spec.id_column)
            break
        except Exception as e:
            if attempt == 2:
                return Outcome(chunk.index, 0, bad, f"the model failed twice: {_reason(e)}")
    path = f"{_Worker.out_dir}/{job.part_name(chunk.index, _Worker.out_format)}"
    try:
        formats.write_part(predicted, _Worker.out_fs, path, _Worker.out_format)  # type: ignore[arg-type]
    except Exception as e:
        return Outcome(chunk.index, 0, bad, f"writing its part failed: {_reason(e)}")
    return Outcome(chunk.index, len(predicted), bad)


def _outcome(future: Future[Outcome], index: int) -> Outcome:
    """What became of chunk `index`, a worker that died on it included."""
    try:
        return future.result()
    except Exception as e:  # the worker process died (BrokenProcessPool), or the chunk could not be sent
        return Outcome(index, 0, [], f"its worker failed: {_reason(e)}")


def run(spec: JobSpec, workers: int | None = None, stream: TextIO = sys.stderr) -> Summary:
    """Run (or resume) `spec` with `workers` processes (default: one per core); the summary says what happened."""
    started = time.monotonic()
    settings = StorageSettings()
    source = formats.open_source(spec.input, spec.input_format, settings, (job.MANIFEST, job.ERRORS))
    out_format = formats.format_of(spec.output, spec.output_format or source.format)
    chunks = formats.plan(source, spec.chunk_rows)
    out_fs, out_dir = formats.filesystem(spec.output, settings, create=True)
    manifest = job.begin(out_fs, out_dir, spec, len(chunks))
    progress = Progress(sum(c.rows for c in chunks), stream, already=sum(chunks[i].rows for i in manifest.done))
    failed: list[int] = []
    pending = [chunks[i] for i in manifest.pending()]
    cores = _usable_cores()
    count = max(1, min(workers or cores, len(pending) or 1))
    try:
        if pending:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                count,
                context,
                initializer=_start_pool_worker,
                initargs=(os.getpid(), max(1, cores // count), spec, source, out_dir, out_format),
            ) as pool:
                in_flight: dict[Future[Outcome], int] = {}
                queue = iter(pending)
                while True:
                    for chunk in queue:
                        in_flight[pool.submit(process_chunk, chunk)] = chunk.index
                        if len(in_flight) >= 2 * count:
                            break
                    if not in_flight:
                        break
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in sorted(finished, key=in_flight.__getitem__):
                        outcome = _outcome(future, in_flight.pop(future))
                        if outcome.failure is not None:
                            failed.append(outcome.index)
                            print(f"batch: chunk {outcome.index} failed: {outcome.failure}", file=stream, flush=True)
                            continue
                        manifest = manifest.finished(outcome.index, ChunkDone(outcome.rows, outcome.bad))
                        job.save(out_fs, out_dir, manifest)
                        progress.advance(chunks[outcome.index].rows)
    finally:
        progress.close()
    bad = manifest.bad_rows()
    if bad:
        job.save_errors(out_fs, out_dir, bad)
    return Summary(manifest.rows, len(bad), sorted(failed), time.monotonic() - started)
