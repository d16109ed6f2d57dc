"""A control plane for unit tests: the real controller, reconciler and store, over a backend that starts nothing and
a gateway that only records the route tables it is handed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wharf.control.backends import ReplicaSpec, ReplicaState
from wharf.control.controller import Controller
from wharf.control.policy import ManifestPolicy
from wharf.control.reconciler import Ingress, Reconciler
from wharf.control.store import Store
from wharf.logger import PayloadLogger

INGRESS = Ingress("http://127.0.0.1:1", "127.0.0.1:2")  # nothing listens: no test here sends through it


class Backend:
    """Records the replicas asked of each revision (`scaled`) and the spec it was asked with; none ever runs."""

    def __init__(self) -> None:
        self.scaled: dict[str, int] = {}
        self.specs: dict[str, ReplicaSpec] = {}

    def replicas(self, revision: str | None = None) -> list[ReplicaState]:
        return []

    async def scale(self, spec: ReplicaSpec, replicas: int) -> None:
        self.scaled[spec.revision] = replicas
        self.specs[spec.revision] = spec

    async def remove(self, revision: str) -> None:
        self.scaled.pop(revision, None)

    def failing(self, revision: str) -> str | None:
        return None


class Gateway:
    """Records the route tables it is handed (`tables`); reports no statistics."""

    def __init__(self) -> None:
        self.tables: list[Any] = []
        self.payloads = PayloadLogger()

    def payload_counts(self) -> dict[str, int]:
        return self.payloads.counts

    def stats(self) -> dict[str, Any]:
        return {}

    def edges(self) -> tuple[Any, ...]:
        return ()

    def update(self, table: Any) -> None:
        self.tables.append(table)


def control_plane(
    home: Path,
    backend: Any = None,
    gateway: Any = None,
    *,
    grace_s: float = 30.0,
    max_replicas: int = 64,
    policy: ManifestPolicy | None = None,
) -> Controller:
    """A controller over the store in `home` (a second one over the same home is a restart), with `backend` and
    `gateway` (by default a fresh `Backend` and `Gateway`) and the reconciler's scale-to-zero grace and replica cap."""
    store = Store(home / "wharf.db")
    backend = Backend() if backend is None else backend
    gateway = Gateway() if gateway is None else gateway
    reconciler = Reconciler(store, backend, gateway, INGRESS, "example.com", grace_s, max_replicas)
    return Controller(store, reconciler, policy)
