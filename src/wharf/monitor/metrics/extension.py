"""The metrics as an extension of the monitor process (`wharf.monitor.app.run(settings, extensions)`): a scheduler
over the monitor's store, kept in its database file and exported to its registry, started now and stopped with the
monitor, its counts shown by `GET /info`, and the metrics API router."""

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
    return [metrics_router(monitor.store, scheduler)]
