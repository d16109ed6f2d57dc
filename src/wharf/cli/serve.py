"""`wharf serve`: the model server's command, in a module of its own so that a replica (`python -m wharf.cli serve`,
see `wharf.cli.entry`) imports only what serving needs, not the whole CLI and its clients (httpx, the spec models).

Registered in the full `wharf` command too (`wharf.cli.main`); both run this same function.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from wharf.errors import WharfError

S = TypeVar("S")  # a settings class

app = typer.Typer(add_completion=False)


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
    from wharf.server import imports
    from wharf.server.app import ModelServer
    from wharf.server.settings import ServerSettings
    from wharf.server.standby import STANDBY_ENV
    from wharf.server.workers import REUSE_PORT_ENV, supervise

    if (model_uri is None) == (model_dir is None):
        raise typer.BadParameter("give the model once: as MODEL_URI or as --model_dir")
    model_uri = model_uri or model_dir
    for variable, value in (("TASK", task), ("MAX_MODEL_LEN", max_model_len), ("DTYPE", dtype)):
        if value is not None:
            os.environ[f"WHARF_HF_{variable}"] = str(value)
    settings = settings_or_exit(
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
    imports.prepare()
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
        reuse_port = os.environ.get(REUSE_PORT_ENV) == "1"
        ModelServer(settings, repository, reuse_port, _standby(os.environ.pop(STANDBY_ENV, ""))).start()
    except WharfError as e:
        typer.echo(f"wharf serve: {e.message}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:  # typically a port already in use
        typer.echo(f"wharf serve: {e}", err=True)
        raise typer.Exit(2) from None


def _standby(handover: str) -> Callable[[Any], Awaitable[None]] | None:
    """What a server started as a standby (`WHARF_STANDBY`, by the local backend) awaits before it listens."""
    if not handover:
        return None
    from wharf.server.standby import wait_for_handover

    return functools.partial(wait_for_handover, Path(handover))


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


def settings_or_exit(cls: type[S], command: str, **given: Any) -> S:
    """`cls` built from the options given on the command line; the others come from WHARF_* or the defaults."""
    from pydantic import ValidationError

    try:
        return cls(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as e:
        typer.echo(f"wharf {command}: {e}", err=True)
        raise typer.Exit(2) from None
