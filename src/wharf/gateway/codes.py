"""The status codes of answers as the gateway counts them, per transport.

Every request forwarded ends with a `Code`: its label in the gateway's metrics (the HTTP status, `"200"`, or the
gRPC status name, `"UNAVAILABLE"`) and whether it counts as an error of the revision (what canary rollback and the
autoscaler's statistics call an error). A transport hands the dispatcher a `Codes` that reads its answers, and
says what the gateway's own failures (timeouts, no ready replica, a broken connection) and a request the client
gave up on count as. Codes are made once per status and reused: reading one costs a call and a dict lookup.

Errors of the revision: REST answers 5xx; gRPC answers with a status a failing replica gives (the transport says
which); the gateway's own failures by the same rule; and a request cancelled before its answer (the client went
away, or it was a shadow's copy cut short), as before it came, since a slow revision is what makes clients leave.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import grpc

from wharf.errors import WharfError

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

CLIENT_CLOSED = 499  # the status nginx logs for a request whose client went away before its answer


@dataclass(frozen=True, slots=True, eq=False)
class Code:
    """How one request ended: `label` as the metrics show it, `error` whether it is the revision's fault."""

    label: str
    error: bool


class Codes(Protocol[T_contra]):
    """A transport's codes: of its answers, and of a forwarded request that raised instead."""

    def of(self, answer: T_contra) -> Code: ...

    def of_exception(self, error: BaseException) -> Code: ...


class HttpCodes(Generic[T]):
    """REST: an answer's HTTP status (`status` reads it); 5xx are errors of the revision."""

    def __init__(self, status: Callable[[T], int]) -> None:
        self._status = status
        self._codes: dict[int, Code] = {}

    def of(self, answer: T) -> Code:
        status = self._status(answer)
        try:
            return self._codes[status]
        except KeyError:
            return self.code(status)

    def of_exception(self, error: BaseException) -> Code:
        if isinstance(error, WharfError):
            return self.code(error.http_status)
        if isinstance(error, asyncio.CancelledError):
            return _CLIENT_CLOSED
        return self.code(500)

    def code(self, status: int) -> Code:
        """The code of HTTP `status`."""
        code = self._codes.get(status)
        if code is None:
            code = self._codes[status] = Code(str(status), status >= 500)
        return code


_CLIENT_CLOSED = Code(str(CLIENT_CLOSED), True)


class GrpcCodes(Generic[T]):
    """gRPC: an answer's status code (`status` reads it); those in `faults` are errors of the revision."""

    def __init__(self, status: Callable[[T], grpc.StatusCode], faults: Collection[grpc.StatusCode]) -> None:
        self._status = status
        self._codes = {code: Code(code.name, code in faults) for code in grpc.StatusCode}
        self._cancelled = Code(grpc.StatusCode.CANCELLED.name, True)

    def of(self, answer: T) -> Code:
        return self._codes[self._status(answer)]

    def of_exception(self, error: BaseException) -> Code:
        if isinstance(error, WharfError):
            return self._codes[grpc.StatusCode[error.grpc_code]]
        if isinstance(error, asyncio.CancelledError):
            return self._cancelled
        return self._codes[grpc.StatusCode.INTERNAL]

    def code(self, status: grpc.StatusCode) -> Code:
        """The code of gRPC `status`."""
        return self._codes[status]
