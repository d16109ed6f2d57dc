"""Per-InferenceService API keys at the gateway (the annotation `serving.wharf.dev/api-key-sha256`).

A service that lists key digests answers only requests that carry a key whose SHA-256 is among them, as
`Authorization: Bearer KEY` or `x-api-key: KEY` (HTTP headers, or gRPC metadata), through its hosts, its
`/serving/` path and InferenceGraph steps alike; others get 401 (gRPC UNAUTHENTICATED) before anything is
forwarded. The gateway keeps digests only. Services without keys pay one attribute read; a service with keys one
SHA-256 of the presented key (about a microsecond).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from wharf.errors import Unauthenticated
from wharf.gateway.routes import Service


def digest(key: str) -> str:
    """What a service's annotation lists for `key`: its SHA-256, lower-case hexadecimal."""
    return hashlib.sha256(key.encode()).hexdigest()


def presented_key(headers: Iterable[tuple[str, str]]) -> str | None:
    """The API key among request headers (names in lower case): `x-api-key`, else a bearer `authorization`."""
    bearer = None
    for name, value in headers:
        if name == "x-api-key":
            return value.strip()
        if name == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer":
                bearer = token.strip()
    return bearer


def require_key(service: Service, key: str | None) -> None:
    """Refuse a request for `service` unless it needs no key or `key` is one of its keys."""
    if not service.api_keys:
        return
    if not key:
        raise Unauthenticated(
            f"InferenceService {service.key} needs an API key: send it as 'Authorization: Bearer KEY' or 'x-api-key'"
        )
    if digest(key) not in service.api_keys:
        raise Unauthenticated(f"the API key is not one of InferenceService {service.key}'s")
