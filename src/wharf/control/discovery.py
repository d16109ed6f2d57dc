"""`ScrapeTargets`: what the control API's `GET /prometheus/targets` answers, Prometheus HTTP service discovery
of this Wharf (the format and labels: `wharf.telemetry.discovery`).

The gateway, the control plane and the monitor are where the daemon started them; the replicas are those the
backend runs now with their HTTP port known (serving, ready or not), each named by the store's record of its
revision. A replica of a revision the store no longer knows (being stopped after a delete) is left out. Costs one
read of the store per InferenceService component at each call (Prometheus asks once per scrape interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wharf.control.backends.base import Backend
from wharf.control.plan import COMPONENTS, ISVC_KIND
from wharf.control.store import RevisionRecord, Store
from wharf.telemetry.discovery import (
    CONTROL_JOB,
    GATEWAY_JOB,
    MONITOR_JOB,
    ScrapeTarget,
    http_sd,
    local_address,
    replica_target,
    url_address,
)

PATH = "/prometheus/targets"  # the control API's route


def discovery_url(control_host: str, control_port: int) -> str:
    """The discovery endpoint's URL, for a Prometheus on this machine, of a control API on `control_host`."""
    return f"http://{local_address(control_host, control_port)}{PATH}"


class ScrapeTargets:
    """Every scrape target of a running `wharf up`."""

    def __init__(self, store: Store, backend: Backend, processes: Sequence[ScrapeTarget]) -> None:
        self.store = store
        self.backend = backend
        self.processes = list(processes)

    @classmethod
    def of_daemon(
        cls, store: Store, backend: Backend, gateway_url: str, control_url: str, monitor_url: str | None
    ) -> ScrapeTargets:
        """The targets of a daemon whose gateway, control API and monitor (None: not running) have these URLs."""
        processes = [ScrapeTarget(url_address(gateway_url), GATEWAY_JOB)]
        processes.append(ScrapeTarget(url_address(control_url), CONTROL_JOB))
        if monitor_url is not None:
            processes.append(ScrapeTarget(url_address(monitor_url), MONITOR_JOB))
        return cls(store, backend, processes)

    def http_sd(self) -> list[dict[str, Any]]:
        """The discovery answer: the daemon's processes, then every serving replica."""
        revisions = self._revisions()
        replicas = [
            replica_target(
                local_address(state.host, state.http_port),
                record.namespace,
                record.service,
                record.component,
                record.name,
                state.id,
            )
            for state in self.backend.replicas()
            if state.http_port and (record := revisions.get(state.revision)) is not None
        ]
        return http_sd([*self.processes, *replicas])

    def _revisions(self) -> dict[str, RevisionRecord]:
        return {
            record.name: record
            for resource in self.store.list(ISVC_KIND)
            for component in COMPONENTS
            for record in self.store.revisions(resource.namespace, resource.name, component)
        }
