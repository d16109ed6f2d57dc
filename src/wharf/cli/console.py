"""`wharf console`: the web console's address, signed in: the token rides in the URL's fragment, which browsers
never send to a server; the page keeps it for its tab (sessionStorage) and takes it out of the address bar."""

from __future__ import annotations

import json
import os
import webbrowser
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer

from wharf.client.control import DaemonAddress, home_from_env


def console(
    viewer: Annotated[bool, typer.Option("--viewer", help="sign in with the read-only viewer token")] = False,
    open_browser: Annotated[bool, typer.Option("--open", help="open it in the default browser too")] = False,
) -> None:
    """Print the address of the web console of the `wharf up` of WHARF_HOME, with a token to sign in.

    The admin's token may change services (apply, promote, roll back, try requests); `--viewer` gives the read-only
    one, to share. WHARF_CONTROL_URL and WHARF_TOKEN, when set, take the place of what WHARF_HOME says."""
    home = home_from_env()
    address = DaemonAddress.read(home)
    url = os.environ.get("WHARF_CONTROL_URL") or (address.control_url if address else None)
    if url is None:
        typer.echo(
            f"error: no `wharf up` found in {home} (no daemon.json); start one, or set WHARF_CONTROL_URL", err=True
        )
        raise typer.Exit(1)
    token = os.environ.get("WHARF_TOKEN")
    if token is None and address is not None and url.rstrip("/") == address.control_url.rstrip("/"):
        token = _viewer_token(home) if viewer else address.token
    if token is None:
        typer.echo("error: no token for that control API; set WHARF_TOKEN", err=True)
        raise typer.Exit(1)
    page = f"{url.rstrip('/')}/#token={quote(token, safe='')}"
    typer.echo(page)
    if open_browser:
        webbrowser.open(page)


def _viewer_token(home: Path) -> str | None:
    """The viewer's token, which only `credentials.json` keeps (daemon.json has the admin's)."""
    try:
        return str(json.loads((home / "credentials.json").read_text())["viewer"])
    except (OSError, ValueError, KeyError):
        return None
