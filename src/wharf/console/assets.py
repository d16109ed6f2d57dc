"""The console's files, served by the control API: the page at `/`, its scripts and styles under `/console/`.

They are read from the package (`static/`) once, when the routes are made, and answered from memory with an ETag
(a reload asks `If-None-Match` and gets 304). Only files that exist there are served: a path is a key of that
mapping, never joined to a directory. The page sets a strict Content-Security-Policy: scripts, styles and data
come from this origin only, nothing inline runs, and no other site may frame it.

The files need no token (they hold no data; the control API's guard lets `/` and `/console/` through); everything
the page shows comes from the API, with the token the page was given.
"""

from __future__ import annotations

import hashlib
import mimetypes
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wharf.errors import NotFound

ASSET_PREFIX = "/console/"
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
        " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",  # the token travels in the URL's fragment, which is never sent; still
    "x-content-type-options": "nosniff",
}
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


class _Asset:
    __slots__ = ("body", "media_type", "etag")

    def __init__(self, body: bytes, name: str) -> None:
        self.body = body
        suffix = name[name.rfind(".") :]
        self.media_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def _read(root: Traversable, prefix: str = "") -> dict[str, _Asset]:
    assets = {}
    for entry in root.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            assets |= _read(entry, name + "/")
        elif not entry.name.startswith("."):
            assets[name] = _Asset(entry.read_bytes(), name)
    return assets


def console_routes() -> APIRouter:
    """The page and its files (see the module's docstring)."""
    assets = _read(files("wharf.console") / "static")
    router = APIRouter(include_in_schema=False)

    def answer(request: Request, asset: _Asset, headers: dict[str, str]) -> Response:
        headers = {**headers, "etag": asset.etag, "cache-control": "no-cache", "x-content-type-options": "nosniff"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    @router.get("/")
    async def page(request: Request) -> Response:
        return answer(request, assets["index.html"], PAGE_HEADERS)

    @router.get(ASSET_PREFIX + "{name:path}")
    async def asset(request: Request, name: str) -> Response:
        found = assets.get(name)
        if found is None or name == "index.html":
            raise NotFound(f"the console has no file {name!r}")
        return answer(request, found, {})

    return router
