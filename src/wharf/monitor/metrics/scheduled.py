"""A scheduled metric request and where it stands: its latest result or error, and its alert state (outside its
bounds or not, and since when). State is frozen; each method returns the next state, named for what happened."""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID

from wharf.monitor.metrics.registry import Metric
from wharf.monitor.metrics.requests import MetricRequest
from wharf.monitor.metrics.results import Result


@dataclass(frozen=True, slots=True)
class ScheduledRequest:
    id: UUID
    metric: Metric
    request: MetricRequest
    registered: float  # Unix seconds


@dataclass(frozen=True, slots=True)
class Alert:
    """Whether the metric is outside its bounds, and since when (Unix seconds; None before it was computed)."""

    outside_bounds: bool = False
    since: float | None = None

    def observed(self, outside_bounds: bool, now: float) -> Alert:
        if self.since is not None and outside_bounds == self.outside_bounds:
            return self
        return Alert(outside_bounds, now)


@dataclass(frozen=True, slots=True)
class Status:
    """The latest successful result, the error of the latest computation if it failed, and the alert state (left
    as it was by a failure)."""

    result: Result | None = None
    error: str | None = None
    computed_at: float | None = None
    alert: Alert = Alert()

    def computed(self, result: Result, now: float) -> Status:
        return Status(result, None, now, self.alert.observed(result.outside_bounds, now))

    def failed(self, error: str, now: float) -> Status:
        return replace(self, error=error, computed_at=now)

    @property
    def current(self) -> Result | None:
        """The result that stands: the latest, unless the latest computation failed."""
        return None if self.error is not None else self.result
