"""The `wharf` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from wharf.cli import control
from wharf.errors import WharfError

app = typer.Typer(help="Wharf: serve trained models in production.", no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    """Wharf: serve trained models in production."""


for command in (control.apply, control.get, control.describe, control.delete):
    app.command()(command)
app.add_typer(control.rollout, name="rollout")


@app.command()
def serve(
    model_uri: Annotated[str, typer.Argument(help="model file or directory, a repository of models, or module:Class")],
    name: Annotated[Optional[str], typer.Option(help="model name (default: from the file or directory name)")] = None,
    runtime: Annotated[
        Optional[str], typer.Option(help="model format, e.g. sklearn (default: from the artifact)")
    ] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="REST port (0: any free port)")] = 8080,
    grpc_port: Annotated[int, typer.Option(help="gRPC port (0: any free port)")] = 8081,
    workers: Annotated[int, typer.Option(min=1, help="processes serving the same ports")] = 1,
    max_batch_size: Annotated[
        Optional[int], typer.Option(min=1, help="merge concurrent requests into predict calls of up to N rows")
    ] = None,
    max_latency_ms: Annotated[
        Optional[float], typer.Option(min=0, help="while requests arrive together, wait up to this to fill a batch")
    ] = None,
) -> None:
    """Serve a model (or a directory of models) over the Open Inference Protocol and KServe V1."""
    from wharf import storage
    from wharf.model.repository import ModelRepository, source_factory
    from wharf.model.runtimes import is_model_dir
    from wharf.model.runtimes.custom import is_class_path
    from wharf.server.app import ModelServer
    from wharf.server.settings import ServerSettings
    from wharf.server.workers import REUSE_PORT_ENV, supervise

    if workers > 1:
        if http_port == 0 or grpc_port == 0:
            raise typer.BadParameter("several workers share fixed ports; give --http-port and --grpc-port")
        argv = [a for a in sys.argv[1:]]
        raise typer.Exit(supervise(_one_worker(argv), workers))
    try:
        given = {"max_batch_size": max_batch_size, "max_batch_latency_ms": max_latency_ms}
        settings = ServerSettings(
            host=host, http_port=http_port, grpc_port=grpc_port, **{k: v for k, v in given.items() if v is not None}
        )
        repository = ModelRepository()
        path = Path(model_uri)
        if path.is_dir() and not is_model_dir(path) and name is None and runtime is None:
            repository.root = storage.resolve(model_uri)
        else:
            model_name = name or (
                model_uri.rpartition(":")[2].lower()
                if is_class_path(model_uri) and not path.exists()
                else storage.model_name(model_uri)
            )
            repository.add_factory(model_name, None, source_factory(model_uri, model_name, runtime, storage.resolve))
        ModelServer(settings, repository, reuse_port=os.environ.get(REUSE_PORT_ENV) == "1").start()
    except WharfError as e:
        typer.echo(f"wharf serve: {e.message}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:  # typically a port already in use
        typer.echo(f"wharf serve: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def up(
    home: Annotated[
        Optional[Path], typer.Option(envvar="WHARF_HOME", help="state directory (default ./.wharf)")
    ] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    gateway_port: Annotated[int, typer.Option(help="gateway REST port")] = 8000,
    gateway_grpc_port: Annotated[int, typer.Option(help="gateway gRPC port")] = 8001,
    control_port: Annotated[int, typer.Option(help="control API port")] = 8002,
) -> None:
    """Run the control plane and the gateway (state in SQLite under WHARF_HOME) until SIGTERM or Ctrl-C."""
    import asyncio

    from wharf.control.daemon import DaemonSettings, run
    from wharf.server import logs
    from wharf.server.app import loop_factory

    given = {
        "home": home,
        "host": host,
        "gateway_http_port": gateway_port,
        "gateway_grpc_port": gateway_grpc_port,
        "control_port": control_port,
    }
    settings = DaemonSettings(**{k: v for k, v in given.items() if v is not None})
    logs.configure("INFO")
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run(settings))
    except (WharfError, OSError) as e:
        typer.echo(f"wharf up: {getattr(e, 'message', e)}", err=True)
        raise typer.Exit(2) from None


def _one_worker(argv: list[str]) -> list[str]:
    """The same command line, asking for a single worker."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return [*out, "--workers", "1"]
