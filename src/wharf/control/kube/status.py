"""Errors of the Kubernetes API as its `Status` objects, the one place they are made.

The control API answers an error of a Kubernetes route (`is_kube_path`) with a `Status`: `code` (the HTTP status),
`reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Gone`, ...), `message` and `details` (the resource's
name, group and kind, and for `Invalid` one cause per field, read from the field paths of Wharf's own validation).
kubectl prints `Error from server (REASON): MESSAGE`; KServe's SDK raises them. Beside `message`, a Status carries
Wharf's `error` with the same text, so that Wharf's own clients read every error of the control API alike (Kubernetes'
clients ignore a field they do not know).

Wharf's other errors raised under these routes keep their message and HTTP status, and are given that status'
reason here (a manifest Wharf refuses is made `Invalid`, with its causes, where the resource is known:
`wharf.control.kube.resources`).
"""

from __future__ import annotations

from typing import Any

from wharf.errors import WharfError

#: Where Wharf's own REST routes are (their errors stay `{"error": ...}`); its kinds have other versions.
WHARF_ROUTES = "/apis/wharf.dev/v1/"

#: HTTP status -> the reason Kubernetes gives it (`metav1.StatusReason`).
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class StatusError(WharfError):
    """An error the Kubernetes routes answer as it is: its HTTP status, reason and `details`."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.http_status = code
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details


def is_kube_path(path: str) -> bool:
    """Whether `path` is one of the Kubernetes API's: `/api...`, `/apis`, and `/apis/GROUP/...` of a group with a dot,
    except Wharf's own REST routes under `WHARF_ROUTES` (the console's, the service graph). Its errors are Status
    objects."""
    if path in ("/api", "/apis") or path.startswith("/api/"):
        return True
    if not path.startswith("/apis/") or path.startswith(WHARF_ROUTES):
        return False
    return "." in path[len("/apis/") :].split("/", 1)[0]


def status(code: int, message: str, reason: str | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A failure `Status` object."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "Unknown"),
        "code": code,
        "error": message,  # Wharf's clients read this (the module docstring)
    }
    if details:
        body["details"] = details
    return body


def of_error(error: WharfError) -> dict[str, Any]:
    """The Status of a Wharf error raised under a Kubernetes route (the rules of the module docstring)."""
    if isinstance(error, StatusError):
        return status(error.http_status, error.message, error.reason, error.details)
    return status(error.http_status, error.message)
