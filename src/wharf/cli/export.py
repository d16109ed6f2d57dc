"""`wharf export isvc|ig`: what a KServe cluster needs to run the same services (`wharf.export`), read from the
control API: the manifests as a multi-document YAML stream on standard output, or files in a directory (`-o DIR`)
with the Dockerfile of the serving runtime's image. What did not carry over is said on standard error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml

from wharf.cli.control import ControlUrl, Namespace, _client
from wharf.client.control import ControlClient
from wharf.errors import ConfigurationError
from wharf.export import kserve, runtime

app = typer.Typer(help="Write what a KServe cluster needs to run Wharf's resources.", no_args_is_help=True)

Name = Annotated[str | None, typer.Argument(help="the resource's name (or --all)", show_default=False)]
All = Annotated[bool, typer.Option("--all", help="every one in the namespace")]
Output = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="a directory to write the files into (default: the YAML on standard output)"),
]


@app.command("isvc")
def isvc(
    name: Name = None,
    every: All = False,
    namespace: Namespace = "default",
    output: Output = None,
    runtime_name: Annotated[
        str | None,
        typer.Option("--runtime", help="the ClusterServingRuntime's name (default: wharf-FORMAT-..., by formats)"),
    ] = None,
    image: Annotated[
        str | None, typer.Option(help="the runtime's image, as the cluster pulls it (default: RUNTIME:VERSION)")
    ] = None,
    control_url: ControlUrl = None,
) -> None:
    """InferenceServices, the ClusterServingRuntime that runs Wharf's model server for them, and (with -o) the
    Dockerfile of its image. Push the image, then `kubectl apply -f` the YAML."""
    with _client(control_url) as client:
        documents = _read(client, "isvc", name, every, namespace)
    try:
        serving, exported = kserve.services(documents, runtime_name, image)
    except ConfigurationError as e:
        _fail(e.message)
    _warn(exported)
    objects = [runtime.cluster_serving_runtime(serving), *(e.manifest for e in exported)]
    _write(objects, output, {"Dockerfile": runtime.dockerfile(serving)})


@app.command("ig")
def ig(
    name: Name = None,
    every: All = False,
    namespace: Namespace = "default",
    output: Output = None,
    control_url: ControlUrl = None,
) -> None:
    """InferenceGraphs as KServe runs them (the InferenceServices they call: `wharf export isvc`)."""
    with _client(control_url) as client:
        documents = _read(client, "ig", name, every, namespace)
    exported = []
    for document in documents:
        try:
            exported.append(kserve.inference_graph(document))
        except ConfigurationError as e:
            _fail(f"inferencegraph/{document['metadata']['name']}: {e.message}")
    _warn(exported)
    _write([e.manifest for e in exported], output, {})


def _read(client: ControlClient, kind: str, name: str | None, every: bool, namespace: str) -> list[dict[str, Any]]:
    if every == (name is not None):
        raise typer.BadParameter(f"name one {kind}, or give --all")
    if name is not None:
        return [client.get(kind, name, namespace)]
    found = client.list(kind, namespace)
    if not found:
        _fail(f"no {kind} in namespace {namespace}")
    return found


def _warn(exported: Iterable[kserve.Exported]) -> None:
    for each in exported:
        label = f"{each.manifest['kind'].lower()}/{each.manifest['metadata']['name']}"
        for warning in each.warnings:
            typer.echo(f"warning: {label}: {warning}", err=True)


def _write(objects: list[dict[str, Any]], output: Path | None, files: Mapping[str, str]) -> None:
    """The objects on standard output as one YAML stream, or each in a file of its own in `output`, beside `files`
    (name -> text)."""
    if output is None:
        typer.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)
        if files:
            typer.echo(f"note: -o DIR writes {', '.join(files)} too", err=True)
        return
    texts = {f"{o['kind'].lower()}-{o['metadata']['name']}.yaml": yaml.safe_dump(o, sort_keys=False) for o in objects}
    try:
        output.mkdir(parents=True, exist_ok=True)
        for file, text in {**texts, **files}.items():
            (output / file).write_text(text)
            typer.echo(str(output / file))
    except OSError as e:
        _fail(f"cannot write {output}: {e.strerror or e}")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
