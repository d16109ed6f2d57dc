"""Who may call the control API, and from where.

`wharf up` makes two bearer tokens on its first start and keeps them in WHARF_HOME/credentials.json (mode 0600):
`admin` may do everything, `viewer` may only read (GET and HEAD). Every call needs one
(`Authorization: Bearer TOKEN`) except the health check, the API's own documentation, the web console's page and
files (`/`, `/console/...`: no data in them) and `/metrics`: a Prometheus
scrape job sends one authorization to every target it scrapes, replicas running users' code among them, so the
control plane's figures are open as the gateway's and the replicas' are (its service discovery needs a token).

A web page of another site must not reach the API through the user's browser, so before the token is looked at:
- the `Host` must be one the API answers to: an IP address, `localhost`, or a name listed in the settings (a page
  that rebinds its own DNS name to 127.0.0.1 sends its name);
- an `Origin`, when the browser sends one, must be the API's own (`http(s)://` the same host and port);
- a body must be JSON or YAML: a form or `text/plain` is what a page may post to any site without asking first.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

Scope = dict[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]
]

OPEN_PATHS = frozenset({"/healthz", "/metrics", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/"})
OPEN_PREFIX = "/console/"  # the web console's scripts and styles
READ_METHODS = frozenset({b"GET", b"HEAD"})
BODY_TYPES = frozenset(
    {
        "application/json",
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "text/x-yaml",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        "application/apply-patch+yaml",
    }
)
_FILE = "credentials.json"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The control API's tokens: one per role."""

    admin: str
    viewer: str

    @classmethod
    def load_or_create(cls, home: Path) -> tuple[Credentials, bool]:
        """The tokens kept in `home`, made (and kept, readable by this user only) when there are none yet; and
        whether they were made now."""
        path = home / _FILE
        try:
            return cls(**json.loads(path.read_text())), False
        except FileNotFoundError:
            pass
        credentials = cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        write_private(path, json.dumps(asdict(credentials)))
        return credentials, True

    def role(self, token: str) -> str | None:
        """`admin`, `viewer`, or None for a token that is neither (compared as bytes: any text may come)."""
        given = token.encode("utf-8", "surrogateescape")
        if hmac.compare_digest(given, self.admin.encode()):
            return "admin"
        if hmac.compare_digest(given, self.viewer.encode()):
            return "viewer"
        return None


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by this user only (from the moment it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(fd, 0o600)
        file.write(text)


def host_allowed(host: str, allowed: Collection[str]) -> bool:
    """Whether a `Host` header (name or address, with or without a port) is one the API answers to."""
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        return False
    if name == "localhost" or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class ControlGuard:
    """ASGI middleware in front of the control API: the checks of this module's docstring, in that order, then
    the token. A refusal answers `{"error": ...}` (401 with `WWW-Authenticate: Bearer`, 403, 415)."""

    def __init__(self, app: ASGIApp, credentials: Credentials, allowed_hosts: Collection[str] = ()) -> None:
        self.app = app
        self.credentials = credentials
        self.allowed_hosts = frozenset(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                status, message = refusal
                await _answer(send, status, message)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = {name: value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get(b"host", "")
        if not host_allowed(host, self.allowed_hosts):
            return 403, f"the control API does not answer to host {host!r} (WHARF_CONTROL_ALLOWED_HOSTS lists more)"
        origin = headers.get(b"origin")
        if origin is not None and _netloc(origin) != host:
            return 403, f"cross-origin request from {origin!r} refused"
        if _has_body(headers):
            content_type = headers.get(b"content-type", "").split(";")[0].strip().lower()
            if content_type not in BODY_TYPES:
                return (
                    415,
                    f"the body must be JSON or YAML (content-type application/json or application/yaml), not {content_type or 'untyped'!r}",
                )
        if scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIX):
            return None
        scheme, _, token = headers.get(b"authorization", "").partition(" ")
        role = self.credentials.role(token.strip()) if scheme.lower() == "bearer" else None
        if role is None:
            return 401, "a valid bearer token is required (WHARF_HOME/daemon.json holds the admin token)"
        if role != "admin" and scope["method"].encode() not in READ_METHODS:
            return 403, f"the {role} token may only read"
        scope.setdefault("state", {})["role"] = role  # for the routes that say who is asking (the console's)
        return None


def _netloc(url: str) -> str | None:
    try:
        return urlsplit(url).netloc
    except ValueError:
        return None


def _has_body(headers: dict[bytes, str]) -> bool:
    return headers.get(b"content-length", "0") not in ("", "0") or b"transfer-encoding" in headers


async def _answer(send: Any, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="wharf"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
