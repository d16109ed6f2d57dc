"""`wharf batch MODEL INPUT OUTPUT`: score a table with a model, in chunks across worker processes, resumable.

Exit status: 0 when every row was predicted, 3 when the job ended with bad rows (in OUTPUT/errors.jsonl), 1 when
chunks failed (listed), 2 for a usage or configuration error."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from wharf.batch import exits
from wharf.errors import WharfError


app = typer.Typer(add_completion=False)


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()] if text else []


def batch(
    model: Annotated[str, typer.Argument(help="model file, directory or URI, module:Class, or isvc/[NAMESPACE/]NAME")],
    input: Annotated[
        str, typer.Argument(help="input file or directory of parts (path or URI): csv, parquet, jsonl, npy")
    ],
    output: Annotated[str, typer.Argument(help="output directory (path or URI): parts, manifest.json, errors.jsonl")],
    workers: Annotated[int | None, typer.Option(min=1, help="worker processes (default: one per core)")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="rows per predict call (default: the whole chunk for scikit-learn, XGBoost and LightGBM models, "
            "1,024 for others and for isvc/)",
        ),
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="rows per chunk (one part each)")] = 100_000,
    output_names: Annotated[
        str | None, typer.Option("--output", help="outputs to write, comma-separated (e.g. predict_proba)")
    ] = None,
    keep: Annotated[str | None, typer.Option(help="input columns copied to the output, comma-separated")] = None,
    id_column: Annotated[str, typer.Option(help="the input's id column (default: the row number, named id)")] = "id",
    input_format: Annotated[
        str | None, typer.Option("--format", help="input format (default: from its extension)")
    ] = None,
    output_format: Annotated[str | None, typer.Option(help="output format (default: the input's)")] = None,
    runtime: Annotated[str | None, typer.Option(help="model format, e.g. sklearn (default: from the artifact)")] = None,
    ray: Annotated[str | None, typer.Option(metavar="ADDRESS|auto", help="run on this Ray cluster (Ray Data)")] = None,
) -> None:
    """Predict every row of INPUT with MODEL into OUTPUT; a rerun of a stopped job resumes where it stopped."""
    from wharf.batch.job import JobSpec
    from wharf.batch import ray_job
    from wharf.batch.runner import run

    spec = JobSpec(
        model=model, input=input, output=output.rstrip("/"), input_format=input_format, output_format=output_format,
        runtime=runtime, chunk_rows=chunk_rows, batch_size=batch_size, outputs=_names(output_names) or None,
        keep=_names(keep), id_column=id_column,
    )  # fmt: skip
    try:
        summary = run(spec, workers) if ray is None else ray_job.run(spec, ray, workers)
    except WharfError as e:
        typer.echo(f"wharf batch: {e.message}", err=True)
        raise typer.Exit(exits.USAGE) from None
    except OSError as e:
        typer.echo(f"wharf batch: {e}", err=True)
        raise typer.Exit(exits.USAGE) from None
    print(f"wharf batch: {summary.line()}", file=sys.stderr)
    if summary.failed_chunks:
        raise typer.Exit(exits.FAILED_CHUNKS)
    if summary.bad_rows:
        raise typer.Exit(exits.BAD_ROWS)


app.command()(batch)
