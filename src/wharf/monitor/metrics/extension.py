"""The metrics as an extension of the monitor process (`wharf.monitor.app.run(settings, extensions)`): a scheduler
over the monitor's store, kept in its database file and exported to its registry, started now and stopped with the
monitor, its counts shown by `GET /info`, the metrics outside their bounds by `GET /status`, and the metrics API
router."""

from __future__ import annotations

from fastapi import APIRouter

from wharf.monitor.app import Monitor
from wharf.monitor.metrics.api import metrics_router
from wharf.monitor.metrics.scheduler import Scheduler
from wharf.monitor.metrics.settings import MetricsSettings


def metrics_extension(monitor: Monitor, settings: MetricsSettings | None = None) -> list[APIRouter]:
    """Start the scheduled metrics of `monitor` (in its event loop) and answer the router to mount."""
    scheduler = Scheduler(monitor.store, monitor.settings.database, monitor.registry, settings)
    scheduler.start()
    monitor.on_stop.append(scheduler.stop)
    monitor.scheduled = scheduler.counts
    monitor.status_parts.append(lambda: outside_bounds(scheduler))
    return [metrics_router(monitor.store, scheduler)]


def outside_bounds(scheduler: Scheduler) -> dict[str, dict[str, list[str]]]:
    """Per model with any, `{"outsideBounds": [...]}`: its scheduled metrics outside their bounds now (lower-case
    names, sorted, once each), from their alert states."""
    outside: dict[str, set[str]] = {}
    for scheduled, status in scheduler.snapshot():
        if status.alert.outside_bounds:
            outside.setdefault(scheduled.request.model_id, set()).add(scheduled.metric.name.lower())
    return {model: {"outsideBounds": sorted(names)} for model, names in outside.items()}
