"""The SDK's errors: what the control plane answered, as `wharf.errors` types carrying its message and status (in
`http_status`, also where no type has that status, such as 409), and `NotReady` for a wait that ran out.

A Kubernetes `Status` answer whose `details.causes` name fields (422 Invalid) becomes a `SpecError` with those
fields as its problems, like the one a manifest checked here raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wharf.client.control import ControlError
from wharf.control.spec import SpecError
from wharf.errors import RequestTimeout, ServerUnreachable, WharfError, answered, from_http_status

if TYPE_CHECKING:
    from wharf.sdk.views import Resource


class NotReady(RequestTimeout):
    """A resource was not ready within the time waited: `reason` is its Ready condition's message, `resource` how
    it stood last (None when it was never seen)."""

    def __init__(self, label: str, timeout_s: float, resource: Resource[Any] | None) -> None:
        self.resource = resource
        self.reason = resource.not_ready_because if resource else "it was never seen"
        super().__init__(f"{label} was not ready after {timeout_s:g} s: {self.reason}")


def typed(error: ControlError) -> WharfError:
    """The `wharf.errors` type of what the control client raised."""
    if error.status is None:
        return (RequestTimeout if error.timed_out else ServerUnreachable)(error.message)
    causes = _causes(error.body)
    found = SpecError(causes) if causes else from_http_status(error.status, error.message)
    found.http_status = error.status
    return answered(found)


def _causes(body: Any) -> list[tuple[str, str]]:
    """(field, message) of each cause in a Kubernetes Status answer's details."""
    details = body.get("details") if isinstance(body, dict) and body.get("kind") == "Status" else None
    causes = details.get("causes") if isinstance(details, dict) else None
    if not isinstance(causes, list):
        return []
    return [
        (str(c.get("field") or ""), str(c.get("message") or c.get("reason") or "invalid"))
        for c in causes
        if isinstance(c, dict)
    ]
