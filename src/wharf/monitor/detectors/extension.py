"""The detectors as an extension of the monitor process (`wharf.monitor.app.run(settings, extensions)`): the
configured detectors (`running.RunningDetectors`) restored and started, fed by the ingest's `on_stored` hook, the
detectors' own calls of a model left out of what is stored (the ingest's `skip`), their counts in `GET /status`,
stopped with the monitor, and their API router. Importing this module imports neither scikit-learn nor scipy: they
come with the first detector fitted."""

from __future__ import annotations

from fastapi import APIRouter

from wharf.monitor.app import Monitor
from wharf.monitor.detectors.api import detectors_router
from wharf.monitor.detectors.gateway import is_detector_request
from wharf.monitor.detectors.running import RunningDetectors


def detectors_extension(monitor: Monitor) -> list[APIRouter]:
    """Start the detectors of `monitor` (in its event loop) and answer the router to mount."""
    detectors = RunningDetectors(monitor.store, monitor.settings, monitor.registry)
    detectors.start()
    monitor.ingest.skip = is_detector_request
    monitor.ingest.on_stored = detectors.offer
    monitor.status_parts.append(detectors.status)
    monitor.on_stop.append(detectors.stop)
    return [detectors_router(detectors)]
