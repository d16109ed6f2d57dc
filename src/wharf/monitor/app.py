"""The monitor process (`wharf monitor`, started by `wharf up`): the store, the CloudEvents sink and the data
endpoints on one embedded HTTP server, until SIGTERM or SIGINT.

`POST /` (payload log events) is a lean ASGI path straight to `wharf.monitor.ingest.Ingest`; every other request
goes to the FastAPI app of `wharf.monitor.api`, where extensions mount their routers.

Extensions (the metrics, the detectors) are functions `extension(monitor) -> routers` that `run` calls once the
store is open, in the event loop: they read rows through `monitor.store` (a `wharf.monitor.data.Rows`), register
Prometheus collectors on `monitor.registry`, may set `monitor.scheduled` (per model, the scheduled metrics' counts
by name, for `GET /info`), add parts to `monitor.status_parts` (what they say of each model in `GET /status`, see
`wharf.monitor.status`), start background tasks, and add what stops them to `monitor.on_stop`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wharf.embedded_http import EmbeddedServer, listen
from wharf.monitor.api import create_api
from wharf.monitor.ingest import Ingest
from wharf.monitor.settings import MonitorSettings
from wharf.monitor.status import StatusPart
from wharf.monitor.store import MonitorStore
from wharf.telemetry import tracing

log = logging.getLogger("wharf.monitor")

INGEST_PATH = "/"


@dataclass
class Monitor:
    """The parts of a running monitor, as extensions get them."""

    settings: MonitorSettings
    store: MonitorStore
    ingest: Ingest
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    #: per model, how many scheduled metrics of each name it has (TrustyAI's `metricCounts` in `GET /info`)
    scheduled: Callable[[str], Mapping[str, int]] | None = None
    #: what each extension says of the models in `GET /status` (`wharf.monitor.status.StatusPart`)
    status_parts: list[StatusPart] = field(default_factory=list)
    #: called in reverse order when the monitor stops, before the store closes
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @classmethod
    def open(cls, settings: MonitorSettings) -> Monitor:
        """A monitor over the store of `settings.database` (opened, created if need be), its counts registered."""
        store = MonitorStore(settings)
        monitor = cls(settings, store, Ingest(settings, store))
        monitor.registry.register(MonitorCounts(monitor))
        return monitor


Extension = Callable[[Monitor], Iterable[APIRouter]]


class MonitorApp:
    """The monitor's ASGI app: `POST /` to the ingestion endpoint, the rest to the data endpoints."""

    def __init__(self, monitor: Monitor, routers: Sequence[APIRouter] = ()) -> None:
        self.ingest = monitor.ingest
        self.api = create_api(monitor, routers)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == INGEST_PATH:
            await self.ingest(scope, receive, send)
        else:
            await self.api(scope, receive, send)


def create_app(monitor: Monitor, routers: Sequence[APIRouter] = ()) -> MonitorApp:
    """The monitor's ASGI app, with `routers` mounted beside the data endpoints."""
    return MonitorApp(monitor, routers)


class MonitorCounts(Collector):
    """The monitor's own figures, read from its plain counters when scraped (nothing is counted through
    prometheus_client per event)."""

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterable[Metric]:
        ingest, store = self._monitor.ingest, self._monitor.store
        counts, written = ingest.counts, store.counts
        received = CounterMetricFamily("wharf_monitor_events", "payload log events received", labels=["type"])
        for kind in ("request", "response"):
            received.add_metric([kind], counts[f"received_{kind}"])
        refused = CounterMetricFamily(
            "wharf_monitor_events_refused",
            "events refused: body (too large or late), event (not a payload log event), payload (undecodable), "
            "columns (not the model's), busy (too many rows waiting)",
            labels=["reason"],
        )
        for reason in ("body", "event", "payload", "columns", "busy"):
            refused.add_metric([reason], counts[f"refused_{reason}"])
        yield received
        yield refused
        yield CounterMetricFamily("wharf_monitor_exchanges", "requests paired with their responses", counts["paired"])
        yield CounterMetricFamily(
            "wharf_monitor_events_skipped", "events of the detectors' own calls, left out", counts["skipped"]
        )
        yield CounterMetricFamily(
            "wharf_monitor_events_unpaired", "halves dropped before their other half came", ingest.pairing.dropped
        )
        yield GaugeMetricFamily(
            "wharf_monitor_events_waiting", "halves waiting for their other half", len(ingest.pairing)
        )
        yield CounterMetricFamily("wharf_monitor_rows_stored", "logged rows written", written["stored"])
        yield CounterMetricFamily(
            "wharf_monitor_rows_failed", "logged rows the database failed to write", written["failed"]
        )
        dropped = CounterMetricFamily(
            "wharf_monitor_rows_dropped",
            "logged rows retention dropped (past retention_rows or retention_days)",
            labels=["reason"],
        )
        for reason in ("rows", "days"):
            dropped.add_metric([reason], written[f"dropped_{reason}"])
        yield dropped
        held = GaugeMetricFamily("wharf_monitor_rows", "logged rows held per model", labels=["model"])
        for name, schema in sorted(store.models.items()):
            held.add_metric([name], store.held[schema.key].rows)
        yield held


async def run(settings: MonitorSettings, extensions: Sequence[Extension] = ()) -> None:
    """Serve until SIGTERM or SIGINT; logs "monitor is up" (with its port) once it listens. Traces (service
    `wharf-monitor`) where OTEL_EXPORTER_OTLP_* names an endpoint (`wharf.telemetry.tracing`)."""
    tracing.configure("wharf-monitor")
    monitor = Monitor.open(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        routers = [router for extension in extensions for router in extension(monitor)]
        listener = listen(settings.host, settings.port)
        server = EmbeddedServer(create_app(monitor, routers), timeout_keep_alive=int(settings.keepalive_timeout_s))
        task = await server.start(listener)
        log.info(
            "monitor is up",
            extra={"host": settings.host, "port": listener.getsockname()[1], "database": str(settings.database)},
        )
        await asyncio.wait([task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await task
    finally:
        for hook in reversed(monitor.on_stop):
            await hook()
        await asyncio.to_thread(monitor.store.close)
        tracing.shutdown()
        log.info("monitor is down")
