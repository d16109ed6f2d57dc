"""`wharf apply / get / describe / delete / wait / logs / rollout`: thin commands over the SDK's ControlClient, in
kubectl's shapes: `TYPE NAME` or `TYPE/NAME`, `-n NAMESPACE` or `-A`, `-o yaml|json|wide|jsonpath=TEMPLATE`, `-w`,
`-f FILE|DIR|-`, durations such as `60s`."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from wharf.cli import progress
from wharf.cli.jsonpath import JsonPathError, render
from wharf.cli.tables import Table, bandit_tables, columns, events_table, multi_model_table
from wharf.client.control import DEFAULT_URL, ControlClient, ControlError, plural

ControlUrl = Annotated[
    str | None,
    typer.Option(
        "--control-url",
        envvar="WHARF_CONTROL_URL",
        help="the control API (default: where the `wharf up` of WHARF_HOME listens, else " + DEFAULT_URL + ")",
    ),
]
Namespace = Annotated[str, typer.Option("--namespace", "-n")]
Kind = Annotated[str, typer.Argument(help="isvc or ig, or TYPE/NAME", metavar="TYPE[/NAME]")]
Files = Annotated[
    list[Path],
    typer.Option(
        "--filename",
        "-f",
        help="a YAML or JSON file, a directory of them (.yaml, .yml, .json), or - for standard input",
    ),
]
KINDS = {
    "inferenceservices": "InferenceService", "inferencegraphs": "InferenceGraph", "batchjobs": "BatchJob",
    "kafkasources": "KafkaSource", "trainedmodels": "TrainedModel",
}  # fmt: skip
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

rollout = typer.Typer(help="Promote or roll back an InferenceService's canary.", no_args_is_help=True)


@contextmanager
def _client(url: str | None) -> Iterator[ControlClient]:
    try:
        with ControlClient(url) as client:
            yield client
    except ControlError as e:
        typer.echo(f"error: {e.message}", err=True)
        if e.status is None:  # nothing answered: perhaps `wharf up` listens elsewhere
            typer.echo("(is `wharf up` running? point at it with --control-url or WHARF_CONTROL_URL)", err=True)
        raise typer.Exit(1) from None


@contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C, or a reader that goes (`| head`), ends a command that follows something (a watch, a log) quietly."""
    try:
        yield
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        raise typer.Exit(0) from None


def _target(kind: str, name: str | None, need_name: bool = False) -> tuple[str, str | None]:
    """(kind, name) from `TYPE NAME` or `TYPE/NAME`."""
    if "/" in kind:
        if name is not None:
            raise typer.BadParameter(f"give {kind} or {kind.partition('/')[0]} {name}, not both")
        kind, _, name = kind.partition("/")
        if not name:
            raise typer.BadParameter(f"{kind}/ names no resource")
    try:
        plural(kind)
    except ControlError as e:
        raise typer.BadParameter(e.message) from None
    if need_name and not name:
        raise typer.BadParameter(f"name the {kind}: {kind} NAME or {kind}/NAME")
    return kind, name


def _label(kind: str, name: str) -> str:
    """`inferenceservice/NAME`, whatever short name the kind was given by."""
    return f"{KINDS[plural(kind)].lower()}/{name}"


def _duration(text: str, option: str) -> float:
    try:
        return progress.duration(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=option) from None


# -- apply and delete: manifests from files, directories and standard input ---------------------------------------
def _manifests(files: list[Path]) -> Iterator[tuple[str, str, Path]]:
    """(what to call it, text, the directory its relative paths are read from) for each file given; a directory
    gives its .yaml, .yml and .json files, in name order."""
    for file in files:
        if str(file) == "-":
            yield "standard input", sys.stdin.read(), Path.cwd()
        elif file.is_dir():
            found = sorted(p for p in file.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
            if not found:
                raise typer.BadParameter(f"{file} holds no {', '.join(MANIFEST_SUFFIXES)} files", param_hint="-f")
            for each in found:
                yield str(each), _read(each), each.absolute().parent
        else:
            yield str(file), _read(file), file.absolute().parent


def _read(file: Path) -> str:
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise typer.BadParameter(f"cannot read {file}: {getattr(e, 'strerror', None) or e}", param_hint="-f") from None


def apply(
    files: Files,
    wait: Annotated[
        bool, typer.Option("--wait", help="then show a live line per resource until each is Ready")
    ] = False,
    timeout: Annotated[str, typer.Option(help="how long --wait waits (e.g. 90s, 5m)")] = "5m",
    control_url: ControlUrl = None,
) -> None:
    """Create or update the resources in the given files (multi-document YAML; idempotent). Relative paths in a
    file are read from its directory (from the current one for standard input)."""
    timeout_s = _duration(timeout, "--timeout")
    applied: dict[str, list[tuple[str, str]]] = {}
    with _client(control_url) as client:
        for _, text, base in _manifests(files):
            for result in client.apply(text, base=base):
                typer.echo(f"{result['kind'].lower()}/{result['name']} {result['result']}")
                for warning in result.get("warnings", ()):
                    typer.echo(f"warning: {warning}", err=True)
                applied.setdefault(result["kind"], []).append((result["namespace"], result["name"]))
        if not wait:
            return
        late = []
        with _interruptible():
            for kind, targets in applied.items():  # services first: graphs wait for them
                late += progress.wait_ready(client, kind, targets, timeout_s, sys.stdout)
    if late:
        typer.echo(f"error: timed out after {progress.shown(timeout_s)} waiting for {', '.join(late)}", err=True)
        raise typer.Exit(1)


def delete(
    kind: Annotated[str | None, typer.Argument(help="isvc or ig, or TYPE/NAME", metavar="[TYPE[/NAME]]")] = None,
    name: Annotated[str | None, typer.Argument()] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option("--filename", "-f", help="delete the resources these files (or directories, or -) name"),
    ] = None,
    namespace: Namespace = "default",
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="a missing resource is no error")
    ] = False,
    control_url: ControlUrl = None,
) -> None:
    """Delete resources (and stop their replicas): TYPE NAME, TYPE/NAME, or those named in files."""
    if files and kind:
        raise typer.BadParameter("name resources or give -f, not both")
    if files:
        targets = [target for source, text, _ in _manifests(files) for target in _named(source, text, namespace)]
    elif kind:
        kind, name = _target(kind, name, need_name=True)
        assert name is not None
        targets = [(kind, namespace, name)]
    else:
        raise typer.BadParameter("name a resource (TYPE NAME or TYPE/NAME) or give -f FILE")
    failed = False
    with _client(control_url) as client:
        for each_kind, each_namespace, each_name in targets:
            try:
                client.delete(each_kind, each_name, each_namespace)
            except ControlError as e:
                if e.status is None:
                    raise
                if not (e.status == 404 and ignore_not_found):
                    typer.echo(f"error: {e.message}", err=True)
                    failed = True
                continue
            typer.echo(f"{_label(each_kind, each_name)} deleted")
    if failed:
        raise typer.Exit(1)


def _named(source: str, text: str, namespace: str) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of each document in a manifest text."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as e:
        raise typer.BadParameter(f"{source} is not YAML or JSON: {e}", param_hint="-f") from None
    named = []
    for number, doc in enumerate(documents, 1):
        metadata = doc.get("metadata") if isinstance(doc, dict) else None
        if not isinstance(metadata, dict) or not doc.get("kind") or not metadata.get("name"):
            raise typer.BadParameter(f"{source}: document {number} has no kind and metadata.name", param_hint="-f")
        try:
            plural(str(doc["kind"]))
        except ControlError as e:
            raise typer.BadParameter(f"{source}: document {number}: {e.message}", param_hint="-f") from None
        named.append((str(doc["kind"]), str(metadata.get("namespace") or namespace), str(metadata["name"])))
    return named


# -- get and describe ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    """How `get` prints: `table`, `wide`, `yaml`, `json` or `jsonpath` (with its template)."""

    format: str
    template: str = ""

    @classmethod
    def parse(cls, text: str | None) -> Output:
        if text is None:
            return cls("table")
        if text in ("wide", "yaml", "json"):
            return cls(text)
        kind, _, template = text.partition("=")
        if kind != "jsonpath" or not template:
            raise typer.BadParameter(f"{text!r}: use yaml, json, wide or jsonpath=TEMPLATE", param_hint="-o")
        try:
            render(template, {})
        except JsonPathError as e:
            raise typer.BadParameter(f"jsonpath: {e}", param_hint="-o") from None
        return cls("jsonpath", template)

    @property
    def tabular(self) -> bool:
        return self.format in ("table", "wide")

    def document(self, shown: Any) -> str:
        """One document (a resource, or `{"items": [...]}`) in this format."""
        if self.format == "json":
            return json.dumps(shown, indent=2)
        if self.format == "yaml":
            return yaml.safe_dump(shown, sort_keys=False).rstrip("\n")
        return render(self.template, shown)


def get(
    kind: Kind,
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = "default",
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="in every namespace")] = False,
    output: Annotated[str | None, typer.Option("--output", "-o", help="yaml, json, wide or jsonpath=TEMPLATE")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="then print each change, until Ctrl-C")] = False,
    control_url: ControlUrl = None,
) -> None:
    """List resources, or show one; with -w, go on printing them as they change."""
    kind, name = _target(kind, name)
    shape = Output.parse(output)
    if all_namespaces and name:
        raise typer.BadParameter("-A lists every namespace: name no resource with it")
    scope = None if all_namespaces else namespace
    table = Table(columns(KINDS[plural(kind)], shape.format == "wide", all_namespaces))
    with _client(control_url) as client:
        if watch:
            with _interruptible():
                _watch(client, kind, scope, name, shape, table)
            return
        items = [client.get(kind, name, namespace)] if name else client.list(kind, scope)
    if shape.tabular:
        if items:
            typer.echo(table.render(items))
        else:
            where = "any namespace" if all_namespaces else f"namespace {namespace}"
            typer.echo(f"No {plural(kind)} found in {where}.", err=True)
        return
    typer.echo(shape.document(items[0] if name else {"items": items}))


def _watch(
    client: ControlClient, kind: str, namespace: str | None, name: str | None, shape: Output, table: Table
) -> None:
    """Print the resources, then each one again as it changes (a table's later rows without its header)."""
    if name is not None:
        client.get(kind, name, namespace or "default")  # a name that is not there is an error, as in `get`
    first: list[dict[str, Any]] | None = []  # until the bookmark: what is there now
    printed = False
    for change, item in client.watch(kind, namespace, name):
        if change == "BOOKMARK":
            if first:
                _print_items(first, shape, table, header=True)
                printed = True
            first = None
        elif first is not None:
            first.append(item)
        else:
            _print_items([item], shape, table, header=not printed)
            printed = True


def _print_items(items: list[dict[str, Any]], shape: Output, table: Table, header: bool) -> None:
    if shape.tabular:
        typer.echo(table.render(items, header=header))
        return
    for item in items:
        text = shape.document(item)
        typer.echo(f"---\n{text}" if shape.format == "yaml" else text)


def describe(
    kind: Kind,
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = "default",
    control_url: ControlUrl = None,
) -> None:
    """Show a resource's spec, status, revisions and replicas (`get NAME -o yaml`), then its recent events:
    revisions created, traffic moved, rollbacks and why, replicas started, ready, restarted (with their last
    error), cold starts. A graph's Bandit nodes show each arm's pulls, rewards and share of the traffic."""
    kind, name = _target(kind, name, need_name=True)
    assert name is not None
    with _client(control_url) as client:
        item = client.get(kind, name, namespace)
        events = client.events(kind, name, namespace)
        bandits = client.bandit(name, namespace) if KINDS[plural(kind)] == "InferenceGraph" else None
        held = _multi_model(client, KINDS[plural(kind)], item, namespace)
    shown = bandit_tables(bandits) + "\n" if bandits and bandits["nodes"] else ""
    shown += f"{held}\n\n" if held else ""
    typer.echo(yaml.safe_dump(item, sort_keys=False) + "\n" + shown + events_table(events))


def _multi_model(client: ControlClient, kind: str, item: dict[str, Any], namespace: str) -> str:
    """What a multi-model service's replicas hold; for a TrainedModel, its parent's, with where it is loaded."""
    if kind == "InferenceService":
        return multi_model_table(item.get("status", {}).get("multiModel"))
    if kind != "TrainedModel":
        return ""
    try:
        parent = client.get("isvc", item["spec"]["inferenceService"], namespace)
    except ControlError:  # no parent: the status says so
        return ""
    return multi_model_table(parent.get("status", {}).get("multiModel"), item["metadata"]["name"])


# -- wait and logs ------------------------------------------------------------------------------------------------
def wait(
    resources: Annotated[list[str], typer.Argument(help="TYPE/NAME ... or TYPE NAME", metavar="TYPE/NAME...")],
    wanted: Annotated[
        str, typer.Option("--for", help="condition=NAME[=STATUS] (e.g. condition=Ready) or delete")
    ] = "condition=Ready",
    timeout: Annotated[str, typer.Option(help="give up after this (e.g. 60s, 5m)")] = "30s",
    namespace: Namespace = "default",
    control_url: ControlUrl = None,
) -> None:
    """Wait until each resource meets a condition (or is deleted); exit 1 with what it waited for, and how the
    resource stood, once the timeout has passed."""
    try:
        goal = progress.Wanted.parse(wanted)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--for") from None
    timeout_s = _duration(timeout, "--timeout")
    if len(resources) == 2 and "/" not in resources[0]:
        targets = [_target(resources[0], resources[1], need_name=True)]
    else:
        targets = [_target(resource, None, need_name=True) for resource in resources]
    deadline = time.monotonic() + timeout_s  # for all of them
    with _client(control_url) as client, _interruptible():
        for kind, name in targets:
            assert name is not None
            left = max(deadline - time.monotonic(), 0.0)
            met, last = progress.watch_until(client, kind, namespace, name, goal.met, left)
            label = _label(kind, name)
            if met:
                typer.echo(f"{label} {'deleted' if goal.condition is None else 'condition met'}")
            elif last is None and goal.condition is not None:
                typer.echo(f"error: {label} not found in namespace {namespace}", err=True)
                raise typer.Exit(1)
            else:
                typer.echo(
                    f"error: timed out after {progress.shown(timeout_s)} waiting for {label} to {goal.describe()}"
                    f"{_standing(last, goal)}",
                    err=True,
                )
                raise typer.Exit(1)


def _standing(item: dict[str, Any] | None, goal: progress.Wanted) -> str:
    """How the resource stood when the wait gave up: the condition waited for, with its message."""
    if item is None or goal.condition is None:
        return ""
    found = progress.condition(item, goal.condition)
    if found is None:
        return f"; it has no {goal.condition} condition yet"
    message = f": {found['message']}" if found.get("message") else ""
    why = progress.trouble(item)
    return f"; {found['type']} is {found['status']}{message}" + (f" ({why})" if why and why not in message else "")


def logs(
    target: Annotated[str, typer.Argument(help="isvc/NAME (or NAME)", metavar="isvc/NAME")],
    container: Annotated[
        str, typer.Option("--container", "-c", help="the component: predictor, transformer or explainer")
    ] = "predictor",
    revision: Annotated[
        str | None, typer.Option(help="a revision's name or number (default: the latest created)")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="then print what they write, until Ctrl-C")] = False,
    tail: Annotated[int, typer.Option(help="the last N lines of each replica (-1: all)")] = -1,
    namespace: Namespace = "default",
    control_url: ControlUrl = None,
) -> None:
    """Print the logs of a service's replicas (WHARF_HOME/logs/REVISION/REPLICA.log on the daemon's machine),
    each line prefixed with its replica when several run."""
    kind, name = _target(target, None) if "/" in target else ("isvc", target)
    if plural(kind) != "inferenceservices" or not name:
        raise typer.BadParameter(f"{target}: logs are an InferenceService's (isvc/NAME)")
    out = sys.stdout.buffer
    with _client(control_url) as client, _interruptible():
        for chunk in client.logs(name, namespace, container, revision, None if tail < 0 else tail, follow):
            out.write(chunk)
            out.flush()


@rollout.command()
def promote(name: str, namespace: Namespace = "default", control_url: ControlUrl = None) -> None:
    """Send all traffic to the latest revision."""
    with _client(control_url) as client:
        client.promote(name, namespace)
    typer.echo(f"inferenceservice/{name} promoted")


@rollout.command()
def rollback(name: str, namespace: Namespace = "default", control_url: ControlUrl = None) -> None:
    """Send all traffic back to the previously rolled-out revision."""
    with _client(control_url) as client:
        client.rollback(name, namespace)
    typer.echo(f"inferenceservice/{name} rolled back")
