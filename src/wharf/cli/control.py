"""`wharf apply / get / describe / delete / rollout`: thin commands over the SDK's ControlClient."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from wharf.client.control import DEFAULT_URL, ControlClient, ControlError

ControlUrl = Annotated[
    str | None,
    typer.Option(
        "--control-url",
        envvar="WHARF_CONTROL_URL",
        help="the control API (default: where the `wharf up` of WHARF_HOME listens, else " + DEFAULT_URL + ")",
    ),
]
Namespace = Annotated[str, typer.Option("--namespace", "-n")]
Kind = Annotated[str, typer.Argument(help="isvc or ig")]

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


def apply(
    files: Annotated[list[Path], typer.Option("--filename", "-f", help="YAML file(s); - reads standard input")],
    control_url: ControlUrl = None,
) -> None:
    """Create or update the resources in the given files (multi-document YAML; idempotent). Relative paths in a
    file are read from its directory (from the current one for standard input)."""
    with _client(control_url) as client:
        for file in files:
            stdin = str(file) == "-"
            text = sys.stdin.read() if stdin else _read(file)
            for result in client.apply(text, base=Path.cwd() if stdin else file.absolute().parent):
                typer.echo(f"{result['kind'].lower()}/{result['name']} {result['result']}")
                for warning in result.get("warnings", ()):
                    typer.echo(f"warning: {warning}", err=True)


def _read(file: Path) -> str:
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise typer.BadParameter(f"cannot read {file}: {getattr(e, 'strerror', None) or e}", param_hint="-f") from None


def get(
    kind: Kind,
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Namespace = "default",
    output: Annotated[str | None, typer.Option("--output", "-o", help="yaml or json")] = None,
    control_url: ControlUrl = None,
) -> None:
    """List resources, or show one."""
    if output not in (None, "yaml", "json"):
        raise typer.BadParameter("use -o yaml or -o json")
    with _client(control_url) as client:
        items = [client.get(kind, name, namespace)] if name else client.list(kind, namespace)
    if output in ("yaml", "json"):
        shown: Any = items[0] if name else {"items": items}
        typer.echo(json.dumps(shown, indent=2) if output == "json" else yaml.safe_dump(shown, sort_keys=False))
        return
    typer.echo(_table(items))


def describe(
    kind: Kind,
    name: Annotated[str, typer.Argument()],
    namespace: Namespace = "default",
    control_url: ControlUrl = None,
) -> None:
    """Show a resource's spec, status, revisions and replicas: `get NAME -o yaml`."""
    get(kind, name, namespace, "yaml", control_url)


def delete(
    kind: Kind,
    name: Annotated[str, typer.Argument()],
    namespace: Namespace = "default",
    control_url: ControlUrl = None,
) -> None:
    """Delete a resource and stop its replicas."""
    with _client(control_url) as client:
        client.delete(kind, name, namespace)
    typer.echo(f"{kind}/{name} deleted")


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


def _table(items: list[dict[str, Any]]) -> str:
    rows = [("NAME", "URL", "READY", "PREV", "LATEST", "REPLICAS")]
    for item in items:
        status = item.get("status", {})
        ready = next((c["status"] for c in status.get("conditions", []) if c["type"] == "Ready"), "Unknown")
        traffic = status.get("components", {}).get("predictor", {}).get("traffic", [])
        latest = next((str(t["percent"]) for t in traffic if t.get("latestRevision")), "")
        previous = next((str(t["percent"]) for t in traffic if not t.get("latestRevision")), "")
        replicas = str(status.get("replicas", ""))
        rows.append((item["metadata"]["name"], status.get("url", ""), ready, previous, latest, replicas))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
