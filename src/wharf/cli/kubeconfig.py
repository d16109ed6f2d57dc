"""`wharf kubeconfig`: the kubeconfig of the `wharf up` of WHARF_HOME, for kubectl and KServe's Python SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wharf.cli.console import _viewer_token
from wharf.client.control import home_from_env
from wharf.control.kube import kubeconfig as config


def kubeconfig(
    viewer: Annotated[bool, typer.Option("--viewer", help="the read-only viewer token (context wharf-viewer)")] = False,
    write: Annotated[
        Path | None,
        typer.Option(help="merge it into this kubeconfig (e.g. ~/.kube/config; made if missing) and use its context"),
    ] = None,
) -> None:
    """Print the kubeconfig that points kubectl at the running `wharf up` (its control API over TLS, trusted by
    this Wharf's own certificate authority, with the admin's token), as `wharf up` keeps it in WHARF_HOME/kubeconfig.

    Use it with `KUBECONFIG=.wharf/kubeconfig kubectl get isvc`, or merge it with `--write ~/.kube/config`, which
    adds (or replaces) the cluster, user and context named wharf and makes that context the current one."""
    home = home_from_env()
    found = config.read(home / config.FILE)
    if found is None:
        typer.echo(f"error: no `wharf up` found in {home} (no kubeconfig there); start one", err=True)
        raise typer.Exit(1)
    if viewer:
        token = _viewer_token(home)
        if token is None:
            typer.echo(f"error: no viewer token in {home} (credentials.json)", err=True)
            raise typer.Exit(1)
        found = config.with_user(found, f"{config.NAME}-viewer", token)
    if write is None:
        typer.echo(config.dumps(found), nl=False)
        return
    path = write.expanduser()
    try:
        config.write(path, config.merged(config.read(path), found))
    except (OSError, ValueError) as e:
        typer.echo(f"error: cannot merge into {path}: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"context {found['current-context']!r} written to {path} and made the current one")
