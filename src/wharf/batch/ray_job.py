"""Running a batch job on a Ray cluster (`wharf batch --ray ADDRESS|auto`) through Ray Data, output identical to the
local run (runner.py).

The job is planned here as the local run plans it (the same chunks, the same manifest, so either run resumes the
other's output). What crosses to the cluster is a Ray Data dataset of the pending chunks' indexes, a block each,
built in this process (`from_items`; `from_arrow` runs a remote task for the blocks' metadata, which waits for a
Ray worker process to start: 8-10 s of a 2 M-row job's 20-35 s on a loaded machine, profiled). `map_batches` hands
them, one at a time (`batch_size=1`, `batch_format="pyarrow"`), to a pool of `ChunkScorer` actors (one CPU each,
`workers` of them, default: the cluster's CPUs). Each actor loads the Wharf predictor once, in its constructor
(its BLAS and OpenMP on one thread), then reads, predicts and writes each chunk it is given exactly as a local
worker does (`runner.process_chunk`): the same parts, row order and ids, the same bad rows and retry. Only the
outcome (rows, bad rows, failure) comes back; this process keeps the manifest as each one arrives, so memory on the
driver and in the object store stays a few bytes per chunk whatever the input's size.

Every node must reach INPUT and OUTPUT by the same name: a URI (s3://...) or a path on a shared filesystem (on one
machine, any path). Ray is imported only here, and only when a job runs on it (`pip install wharf[ray]`).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

import pyarrow as pa

from wharf.batch import formats, job, runner
from wharf.batch.formats import BadRow, Chunk, Source
from wharf.batch.job import ChunkDone, JobSpec
from wharf.batch.progress import Progress, Summary
from wharf.errors import ConfigurationError
from wharf.storage.settings import StorageSettings

INDEX = "chunk"


class ChunkScorer:
    """A Ray Data actor: the predictor loaded once, then one chunk per call, written to its part."""

    def __init__(self, spec: JobSpec, source: Source, out_dir: str, out_format: str, chunks: list[Chunk]) -> None:
        runner.start_worker(spec, source, out_dir, out_format, threads=1)  # its one CPU (`num_cpus=1`)
        self.chunks = {chunk.index: chunk for chunk in chunks}

    def __call__(self, batch: pa.Table) -> pa.Table:
        outcomes = [runner.process_chunk(self.chunks[index]) for index in batch.column(INDEX).to_pylist()]
        return pa.table(
            {
                INDEX: [o.index for o in outcomes],
                "rows": [o.rows for o in outcomes],
                "bad": [json.dumps([[b.row, b.reason] for b in o.bad]) for o in outcomes],
                "failure": [o.failure for o in outcomes],
            },
            schema=pa.schema(
                [(INDEX, pa.int64()), ("rows", pa.int64()), ("bad", pa.string()), ("failure", pa.string())]
            ),
        )


def connect(address: str) -> None:
    """Join the Ray cluster at `address` (`auto`: the one this machine runs, found as `ray start` left it)."""
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConfigurationError(f"--ray: could not join the Ray cluster at {address!r}: {e}") from None


def run(spec: JobSpec, address: str, workers: int | None = None, stream: TextIO = sys.stderr) -> Summary:
    """Run (or resume) `spec` on the Ray cluster at `address` with `workers` actors; the summary says what
    happened (as `runner.run`'s does)."""
    import ray

    started = time.monotonic()
    settings = StorageSettings()
    source = formats.open_source(spec.input, spec.input_format, settings)
    out_format = formats.format_of(spec.output, spec.output_format or source.format)
    chunks = formats.plan(source, spec.chunk_rows)
    out_fs, out_dir = formats.filesystem(spec.output, settings, create=True)
    manifest = job.begin(out_fs, out_dir, spec, len(chunks))
    progress = Progress(sum(c.rows for c in chunks), stream, already=sum(chunks[i].rows for i in manifest.done))
    pending = [chunks[i] for i in manifest.pending()]
    failed: list[int] = []
    try:
        if pending:
            connect(address)
            actors = max(1, min(workers or int(ray.cluster_resources().get("CPU", 1)), len(pending)))
            indexes = ray.data.from_items([{INDEX: c.index} for c in pending], override_num_blocks=len(pending))
            dataset = indexes.map_batches(
                ChunkScorer,
                fn_constructor_args=(spec, source, out_dir, out_format, pending),
                batch_size=1,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=1,
            )
            for outcome in _outcomes(dataset):
                if outcome["failure"] is not None:
                    failed.append(outcome[INDEX])
                    print(f"batch: chunk {outcome[INDEX]} failed: {outcome['failure']}", file=stream, flush=True)
                    continue
                bad = [BadRow(row, reason) for row, reason in json.loads(outcome["bad"])]
                manifest = manifest.finished(outcome[INDEX], ChunkDone(outcome["rows"], bad))
                job.save(out_fs, out_dir, manifest)
                progress.advance(chunks[outcome[INDEX]].rows)
    finally:
        progress.close()
    bad_rows = manifest.bad_rows()
    if bad_rows:
        job.save_errors(out_fs, out_dir, bad_rows)
    return Summary(manifest.rows, len(bad_rows), sorted(failed), time.monotonic() - started)


def _outcomes(dataset: Any) -> Any:
    """Each chunk's outcome as it arrives (whatever the order the actors finish in)."""
    for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield from batch.to_pylist()
