"""The headers of the request being served, for model code that needs them: a transformer passes a request's
trace (`traceparent`, `x-request-id`, ...) on to its predictor, a model may read its own.

The model server sets them for each request (HTTP headers, or gRPC metadata). Async model methods see them: they
run in the request's task; so do explanations, run in explanation threads in the request's context; plain methods
run in worker threads, which may serve several requests in one batch, and see none.

While tracing is on, the W3C trace context a call passes on is the current span's (`wharf.telemetry.tracing`), so
the called server's spans are children of the caller's, not siblings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar

from wharf.telemetry import tracing

# What a transformer sends on to its predictor: W3C trace context, B3, the request id, and the API key the gateway
# asks of a service with keys (`wharf.gateway.api_keys`).
PROPAGATED = frozenset(
    {"traceparent", "tracestate", "baggage", "x-request-id", "b3", "authorization", "x-api-key"}
    | {"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"}
)

Headers = Sequence[tuple[bytes | str, bytes | str]]
_headers: ContextVar[Headers | Callable[[], Headers | None]] = ContextVar("wharf_request_headers", default=())


def serving(headers: Headers | Callable[[], Headers | None]) -> None:
    """Set the headers of the request the current task serves, as the transport has them, or what gets them
    (gRPC's `invocation_metadata`): they are read only when asked for."""
    _headers.set(headers)


def request_headers() -> dict[str, str]:
    """The headers of the request being served, names in lower case (repeated ones joined by ", ")."""
    source = _headers.get()
    found: dict[str, str] = {}
    for key, value in (source() if callable(source) else source) or ():
        name = (key.decode("latin-1") if isinstance(key, bytes) else key).lower()
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        found[name] = f"{found[name]}, {text}" if name in found else text
    return found


def propagated_headers() -> dict[str, str]:
    """The request's trace headers (`PROPAGATED`), for a call it makes to another server (the current span's trace
    context in place of the request's while tracing is on)."""
    found = {name: value for name, value in request_headers().items() if name in PROPAGATED}
    if tracing.enabled:
        found.update(tracing.trace_headers())
    return found
