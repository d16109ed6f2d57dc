"""What the control plane asks of a backend: the one seam between the reconciler and where replicas run.

`LocalBackend` (processes on this machine) and `RayBackend` (Ray actors on a cluster) both implement it, and both
pass one contract test suite (tests/integration/test_backend_contract.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from wharf.control.backends.replica import ReplicaSpec, ReplicaState


class Backend(Protocol):
    """Runs the replicas of revisions and says where they stand.

    `on_change` (no arguments, called from the loop) runs whenever a replica starts, becomes ready or unready, ends
    or is stopped, so that routes can be rebuilt from `replicas()`.
    """

    on_change: Callable[[], object] | None

    def replicas(self, revision: str | None = None) -> list[ReplicaState]:
        """The replicas of `revision` (or of all), oldest first; stopping ones are not listed."""
        ...

    def failing(self, revision: str) -> str | None:
        """Why `revision`'s replicas keep failing to start (none ready, the last ones ended unready); else None."""
        ...

    def log_path(self, revision: str, replica_id: str) -> Path:
        """Where the output of a replica is kept (one file per replica, under one directory per revision)."""
        ...

    async def scale(self, spec: ReplicaSpec, replicas: int) -> None:
        """Start or stop replicas of `spec.revision` until it has `replicas`; returns at once."""
        ...

    async def remove(self, revision: str) -> None:
        """Stop every replica of `revision` (in the background)."""
        ...

    async def adopt(self, records: Sequence[ReplicaState], specs: Mapping[str, ReplicaSpec]) -> None:
        """Take back the replicas a previous daemon recorded that still run `specs`; start the others anew."""
        ...

    async def close(self, stop_replicas: bool) -> None:
        """Stop supervising; with `stop_replicas`, stop every replica, else leave them for the next `adopt`."""
        ...
