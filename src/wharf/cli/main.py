"""The `wharf` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from wharf.cli import batch, console, control, export, kubeconfig, monitor, usage
from wharf.errors import WharfError

S = TypeVar("S")  # a settings class

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


@app.command()
def serve(
    model_uri: Annotated[
        str | None, typer.Argument(help="model file or directory, a repository of models, or module:Class")
    ] = None,
    model_dir: Annotated[
        str | None, typer.Option("--model_dir", help="MODEL_URI given as KServe's serving runtimes pass it")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "--model_name", help="model name (default: from the file or directory name)")
    ] = None,
    runtime: Annotated[str | None, typer.Option(help="model format, e.g. sklearn (default: from the artifact)")] = None,
    host: Annotated[str | None, typer.Option(help="address to listen on (default WHARF_HOST, else 127.0.0.1)")] = None,
    http_port: Annotated[
        int | None,
        typer.Option(
            "--http-port", "--http_port", help="REST port, 0 for any free one (default WHARF_HTTP_PORT, else 8080)"
        ),
    ] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port", "--grpc_port", help="gRPC port, 0 for any free one (default WHARF_GRPC_PORT, else 8081)"
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="processes serving the same ports (default WHARF_WORKERS, else 1)")
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(min=1, help="merge concurrent requests into predict calls of up to N rows")
    ] = None,
    max_latency_ms: Annotated[
        float | None, typer.Option(min=0, help="while requests arrive together, wait up to this to fill a batch")
    ] = None,
    memory_budget: Annotated[
        str | None,
        typer.Option(help="bytes or a quantity (512Mi) the models may hold; beyond it the least recently used go"),
    ] = None,
    task: Annotated[str | None, typer.Option(help="Hugging Face task, e.g. text-generation (WHARF_HF_TASK)")] = None,
    max_model_len: Annotated[
        int | None,
        typer.Option(
            "--max_model_len", "--max-model-len", help="a generative model's context (WHARF_HF_MAX_MODEL_LEN)"
        ),
    ] = None,
    dtype: Annotated[
        str | None, typer.Option(help="Hugging Face weights' type: auto, float16... (WHARF_HF_DTYPE)")
    ] = None,
) -> None:
    """Serve a model (or a directory of models) over the Open Inference Protocol and KServe V1.

    An option not given takes its WHARF_* environment variable, else the default of `ServerSettings`. KServe's
    option names (`--model_dir`, `--model_name`, `--http_port`, `--grpc_port`) are taken too, and its Hugging Face
    server's (`--task`, `--max_model_len`, `--dtype`), which set the WHARF_HF_* variables the runtime reads."""
    from wharf import storage
    from wharf.model.repository import ModelRepository, source_factory
    from wharf.model.runtimes import is_model_dir
    from wharf.model.runtimes.custom import names_class
    from wharf.server.app import ModelServer
    from wharf.server.settings import ServerSettings
    from wharf.server.workers import REUSE_PORT_ENV, supervise

    if (model_uri is None) == (model_dir is None):
        raise typer.BadParameter("give the model once: as MODEL_URI or as --model_dir")
    model_uri = model_uri or model_dir
    for variable, value in (("TASK", task), ("MAX_MODEL_LEN", max_model_len), ("DTYPE", dtype)):
        if value is not None:
            os.environ[f"WHARF_HF_{variable}"] = str(value)
    settings = _settings(
        ServerSettings,
        "serve",
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        workers=workers,
        max_batch_size=max_batch_size,
        max_batch_latency_ms=max_latency_ms,
        memory_budget=memory_budget,
    )
    if settings.workers > 1:
        if settings.http_port == 0 or settings.grpc_port == 0:
            raise typer.BadParameter("several workers share fixed ports; give --http-port and --grpc-port")
        argv = sys.argv[1:]
        raise typer.Exit(supervise(_one_worker(argv), settings.workers))
    try:
        repository = ModelRepository()
        path = Path(model_uri)
        if path.is_dir() and not is_model_dir(path) and name is None and runtime is None:
            repository.root = storage.resolve(model_uri)
        else:
            model_name = name or (
                model_uri.rpartition(":")[2].lower() if names_class(model_uri) else storage.model_name(model_uri)
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


def _settings(cls: type[S], command: str, **given: Any) -> S:
    """`cls` built from the options given on the command line; the others come from WHARF_* or the defaults."""
    from pydantic import ValidationError

    try:
        return cls(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as e:
        typer.echo(f"wharf {command}: {e}", err=True)
        raise typer.Exit(2) from None
