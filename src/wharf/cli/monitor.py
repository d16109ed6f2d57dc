"""`wharf monitor`: run the model monitor, or upload reference data to one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wharf.errors import WharfError

app = typer.Typer(
    help="The model monitor: payload logs, reference data, drift and bias, outliers and adversarial inputs.",
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def monitor(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="address to listen on (default WHARF_MONITOR_HOST, else 127.0.0.1)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="port, 0 for any free one (default WHARF_MONITOR_PORT, else 8003)")
    ] = None,
    database: Annotated[
        Path | None, typer.Option(help="SQLite file (default WHARF_MONITOR_DATABASE, else WHARF_HOME/monitor.db)")
    ] = None,
) -> None:
    """Run the monitor until SIGTERM or Ctrl-C: a CloudEvents sink for payload logs (point a service's
    `logger.url` at it) and TrustyAI's data and metrics API. Other settings: WHARF_MONITOR_*."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    from wharf.cli.main import _settings
    from wharf.monitor.app import run
    from wharf.monitor.detectors.extension import detectors_extension
    from wharf.monitor.metrics.extension import metrics_extension
    from wharf.monitor.settings import MonitorSettings
    from wharf.telemetry import logs
    from wharf.server.app import loop_factory

    settings = _settings(MonitorSettings, "monitor", host=host, port=port, database=database)
    logs.configure("INFO")
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run(settings, [metrics_extension, detectors_extension]))
    except (WharfError, OSError) as e:
        typer.echo(f"wharf monitor: {getattr(e, 'message', e)}", err=True)
        raise typer.Exit(2) from None


@app.command()
def upload(
    model: Annotated[str, typer.Argument(help="the model's name (its InferenceService)")],
    path: Annotated[
        Path, typer.Argument(help="a .csv or .parquet file, one column per feature", exists=True, dir_okay=False)
    ],
    tag: Annotated[str, typer.Option(help="the data tag the rows are kept under")] = "TRAINING",
    output: Annotated[
        list[str] | None, typer.Option(help="a column holding an output rather than an input (repeat for several)")
    ] = None,
    url: Annotated[
        str | None, typer.Option(envvar="WHARF_MONITOR_URL", help="the monitor (default: WHARF_MONITOR_HOST and _PORT)")
    ] = None,
) -> None:
    """Upload a file's rows to the monitor as reference data of MODEL (POST /data/upload)."""
    from wharf.monitor.settings import MonitorSettings
    from wharf.monitor.upload import upload_file

    try:
        rows = upload_file(url or MonitorSettings().url, path, model, tag, output or ())
    except WharfError as e:
        typer.echo(f"wharf monitor upload: {e.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{rows} rows of {path.name} uploaded to {model}, tagged {tag}")
