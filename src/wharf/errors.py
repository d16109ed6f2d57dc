"""Wharf's one exception hierarchy.

Each error carries the HTTP status and the gRPC status code (by name, so that this module imports no transport)
that the transports answer with. Transports map errors in exactly one place each.
"""

from __future__ import annotations


class WharfError(Exception):
    """Base of every error Wharf raises on purpose."""

    http_status: int = 500
    grpc_code: str = "INTERNAL"
    #: True when a client raised it for what a server answered (`from_http_status`, `from_grpc_code`, a malformed
    #: answer); False when it was raised here, e.g. by a client refusing a request before sending it.
    answered: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(WharfError):
    """The request is malformed or does not fit the model."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class PayloadTooLarge(WharfError):
    """The request body exceeds the configured limit."""

    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class ModelNotFound(WharfError):
    """No model (or no such version of it) is known."""

    http_status = 404
    grpc_code = "NOT_FOUND"


class NotFound(WharfError):
    """No such endpoint or resource."""

    http_status = 404
    grpc_code = "NOT_FOUND"


class Unauthenticated(WharfError):
    """The request lacks credentials the resource asks for, or they are not accepted."""

    http_status = 401
    grpc_code = "UNAUTHENTICATED"


class Forbidden(WharfError):
    """The operation exists but is not offered to this caller here (e.g. a control operation sent to the gateway)."""

    http_status = 403
    grpc_code = "PERMISSION_DENIED"


class MethodNotAllowed(WharfError):
    """The endpoint exists but not for this HTTP method; `allowed` is the one it takes (the `Allow` header)."""

    http_status = 405
    grpc_code = "UNIMPLEMENTED"

    def __init__(self, message: str, allowed: str | None = None) -> None:
        super().__init__(message)
        self.allowed = allowed


class Unimplemented(WharfError):
    """The protocol operation exists but Wharf does not offer it."""

    http_status = 501
    grpc_code = "UNIMPLEMENTED"


class ModelNotReady(WharfError):
    """The model is known but not loaded (yet, or any more)."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class ServerBusy(WharfError):
    """A bounded queue is full; the client should retry later."""

    http_status = 503
    grpc_code = "UNAVAILABLE"


class RequestTimeout(WharfError):
    """The request did not complete within its deadline."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"


class ModelLoadError(WharfError):
    """A model's artifact could not be fetched or loaded."""

    http_status = 500
    grpc_code = "INTERNAL"


class ConfigurationError(WharfError):
    """Settings or a model specification are invalid (raised at start-up, not per request)."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class ServerUnreachable(WharfError):
    """A server could not be connected to, or the connection broke before it answered."""

    http_status = 502
    grpc_code = "UNAVAILABLE"


class PredictorFailed(WharfError):
    """The model server behind a transformer refused or failed the request the transformer made."""

    http_status = 502
    grpc_code = "INTERNAL"


# The error a client raises for a status a server answered with; where several classes share a status, the
# first listed (the most general) stands for them all.
_ANSWERED = (
    InvalidInput,
    PayloadTooLarge,
    Unauthenticated,
    Forbidden,
    NotFound,
    Unimplemented,
    MethodNotAllowed,
    ServerBusy,
    RequestTimeout,
    ServerUnreachable,
)
_BY_HTTP_STATUS = {cls.http_status: cls for cls in reversed(_ANSWERED)}
_BY_GRPC_CODE = {cls.grpc_code: cls for cls in reversed(_ANSWERED)}


def answered(error: WharfError) -> WharfError:
    """`error`, marked as what a server answered."""
    error.answered = True
    return error


def from_http_status(status: int, message: str) -> WharfError:
    """The (answered) error for an HTTP error status (`WharfError` for one no class has)."""
    return answered(_BY_HTTP_STATUS.get(status, WharfError)(message))


def from_grpc_code(code: str, message: str) -> WharfError:
    """The (answered) error for a gRPC status code name such as "NOT_FOUND" (`WharfError` for one no class has)."""
    return answered(_BY_GRPC_CODE.get(code, WharfError)(message))
