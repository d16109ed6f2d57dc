"""The `wharf` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wharf.cli import batch, console, control, export, kubeconfig, monitor, usage
from wharf.cli.serve import serve
from wharf.cli.serve import settings_or_exit as _settings
from wharf.errors import WharfError

app = typer.Typer(help="Wharf: serve trained models in production.", no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    """Wharf: serve trained models in production."""


for command in (
    control.apply, control.get, control.describe, control.delete, control.wait, control.logs, usage.top, usage.cost,
):  # fmt: skip
    app.command()(command)
app.add_typer(control.rollout, name="rollout")
app.command()(console.console)
app.command()(kubeconfig.kubeconfig)
app.command()(batch.batch)
app.add_typer(monitor.app, name="monitor")
app.add_typer(export.app, name="export")
app.command()(serve)


@app.command()
def up(
    home: Annotated[Path | None, typer.Option(envvar="WHARF_HOME", help="state directory (default ./.wharf)")] = None,
    host: Annotated[str | None, typer.Option(help="address to listen on (default WHARF_HOST, else 127.0.0.1)")] = None,
    gateway_port: Annotated[
        int | None, typer.Option(help="gateway REST port (default WHARF_GATEWAY_HTTP_PORT, else 8000)")
    ] = None,
    gateway_grpc_port: Annotated[
        int | None, typer.Option(help="gateway gRPC port (default WHARF_GATEWAY_GRPC_PORT, else 8001)")
    ] = None,
    control_port: Annotated[
        int | None, typer.Option(help="control API port (default WHARF_CONTROL_PORT, else 8002)")
    ] = None,
    prometheus: Annotated[
        bool | None,
        typer.Option(
            "--prometheus/--no-prometheus",
            help="run a Prometheus server scraping this Wharf (default WHARF_PROMETHEUS, else off)",
        ),
    ] = None,
    prometheus_port: Annotated[
        int | None, typer.Option(help="that Prometheus's port (default WHARF_PROMETHEUS_PORT, else 9090)")
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="where replicas run: local or ray (default WHARF_BACKEND, else local)")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="the Ray cluster for --backend ray (default WHARF_RAY_ADDRESS, else auto)")
    ] = None,
) -> None:
    """Run the control plane and the gateway (state in SQLite under WHARF_HOME) until SIGTERM or Ctrl-C.

    An option not given takes its WHARF_* environment variable, else the default of `DaemonSettings`."""
    import asyncio

    from wharf.control.daemon import DaemonSettings, run
    from wharf.telemetry import logs
    from wharf.server.app import loop_factory

    settings = _settings(
        DaemonSettings,
        "up",
        home=home,
        host=host,
        gateway_http_port=gateway_port,
        gateway_grpc_port=gateway_grpc_port,
        control_port=control_port,
        prometheus=prometheus,
        prometheus_port=prometheus_port,
        backend=backend,
        ray_address=ray_address,
    )
    logs.configure("INFO")
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run(settings))
    except (WharfError, OSError) as e:
        typer.echo(f"wharf up: {getattr(e, 'message', e)}", err=True)
        raise typer.Exit(2) from None


@app.command()
def apikey() -> None:
    """Make an API key for InferenceServices: give the key to their clients, put the annotation in the services'
    metadata.annotations (it holds only the key's digest), and the gateway asks every request for the key."""
    import secrets

    from wharf.control.spec import API_KEY_SHA256
    from wharf.gateway.api_keys import digest

    key = secrets.token_urlsafe(32)
    typer.echo(f"key: {key}")
    typer.echo(f'annotation: {API_KEY_SHA256}: "{digest(key)}"')


@app.command(hidden=True)
def gateway(
    socket: Annotated[Path, typer.Option(help="the Unix socket its daemon reaches it on")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    http_port: Annotated[int, typer.Option()] = 0,
    grpc_port: Annotated[int, typer.Option()] = 0,
) -> None:
    """The gateway as a process of its own; `wharf up` starts it (settings: WHARF_GATEWAY_*)."""
    import asyncio

    from wharf.gateway.standalone import run
    from wharf.telemetry import logs
    from wharf.server.app import loop_factory

    logs.configure("INFO")
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run(host, http_port, grpc_port, socket))
    except (WharfError, OSError) as e:
        typer.echo(f"wharf gateway: {getattr(e, 'message', e)}", err=True)
        raise typer.Exit(2) from None
