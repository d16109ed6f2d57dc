"""`RunningDetectors`: a monitor's configured detectors at work: fitted, fed with the logged rows of their model,
their findings reported and counted.

A model has at most one detector of each kind (outliers, adversarial); configuring another replaces it. A detector
is `fitting` (at start-up, until its kept configuration is fitted again in a worker thread, so that start-up is not
held), `ready` (inspecting), or `failed` (that refit failed, `error` says why; it stays listed until deleted or
replaced). Configurations are kept in the monitor's database (`configs.DetectorTable`).

Each exchange the ingest stores is offered to its model's ready detectors (`offer`, the ingest's `on_stored` hook:
for a model without detectors a dict lookup; else an `Origin` and, per detector, an append to its kind's
`InspectionQueue`). A task per kind takes what is queued in batches of at most `detector_batch_rows` rows, puts each
exchange's input rows in the model's column order (the order the detector was fitted in) and runs the model's
`Inspector` over them: outliers in a worker thread, adversarial inputs by one call of the model through the gateway
for the inferences the detector samples. Rows offered to a full queue are dropped and counted, never waited for.

Findings go as CloudEvents to the detector's reply URL (else the monitor's `reply_url`; none: only counted), through
one payload logger; each detector tallies the rows it inspected, detected, failed and dropped (`GET /detectors`,
`GET /status`), besides the per-service Prometheus counters of `DetectorReports`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from wharf.errors import NotFound, WharfError
from wharf.monitor.detectors.configs import (
    KINDS,
    AdversarialBody,
    DetectorBody,
    DetectorConfig,
    DetectorTable,
    Kind,
    OutlierBody,
)
from wharf.monitor.detectors.events import Detector, DetectorReports, Origin
from wharf.monitor.detectors.fitting import (
    clean_rows,
    fit_adversarial,
    fit_outliers,
    predictor_host,
    restore_adversarial,
)
from wharf.monitor.detectors.queue import InspectionQueue
from wharf.monitor.ingest import PREDICTOR, Event
from wharf.monitor.payloads import Table
from wharf.monitor.settings import MonitorSettings
from wharf.monitor.status import rate
from wharf.monitor.store import Exchange, MonitorStore

if TYPE_CHECKING:
    from wharf.monitor.detectors.adversarial import AdversarialDetector
    from wharf.monitor.detectors.inspection import Inspector

log = logging.getLogger(__name__)

State = Literal["fitting", "ready", "failed"]
#: The `detector` label of a kind in `DetectorReports`' counters.
LABELS: dict[Kind, Detector] = {"outliers": "outlier", "adversarial": "adversarial"}
_TALLIED = ("inspected", "detected", "failed", "dropped")


class TalliedReports(DetectorReports):
    """One detector's share of the monitor's reports: the counters and poster of `shared`, its own reply URL, and
    its own tally of rows inspected, detected, failed (and dropped, counted by `RunningDetectors`)."""

    def __init__(self, shared: DetectorReports, reply_url: str | None) -> None:
        vars(self).update(vars(shared))
        self.reply_url = reply_url
        self.tally: Counter[str] = Counter()

    def count(self, detector: Detector, origin: Origin, inspected: int, detected: int = 0, failed: int = 0) -> None:
        super().count(detector, origin, inspected, detected, failed)
        self.tally.update(inspected=inspected, detected=detected, failed=failed)


@dataclass(eq=False)
class RunningDetector:
    """A configured detector and where it stands."""

    config: DetectorConfig
    reports: TalliedReports
    state: State = "fitting"
    error: str | None = None
    inspector: Inspector | None = None  # None until fitted, and once deleted or replaced
    fitted: dict[str, Any] | None = field(default=None)  # what the fit found, as listed

    @property
    def key(self) -> tuple[Kind, str]:
        return self.config.kind, self.config.model

    def described(self) -> dict[str, Any]:
        """The detector as the API lists it."""
        config = self.config
        return {
            "id": config.id,
            "type": config.kind,
            **config.body.model_dump(mode="json", by_alias=True),
            "created": datetime.fromtimestamp(config.created, UTC).isoformat(timespec="milliseconds"),
            "state": self.state,
            "error": self.error,
            "fitted": self.fitted,
            "counts": {what: self.reports.tally[what] for what in _TALLIED},
        }


Queued = tuple[RunningDetector, Origin, Table]


class RunningDetectors:
    """The detectors of a monitor over `store` (see the module's docstring); `start` and `stop` in its event loop."""

    def __init__(self, store: MonitorStore, settings: MonitorSettings, registry: CollectorRegistry) -> None:
        self._store = store
        self._settings = settings
        self._table = DetectorTable(settings.database)
        self._reports = DetectorReports(registry, settings.reply_url, source=settings.url)
        self._by_id: dict[str, RunningDetector] = {}
        self._current: dict[tuple[Kind, str], RunningDetector] = {}
        self._watching: dict[str, dict[Kind, RunningDetector]] = {}  # per model, its ready detectors
        self._queues: dict[Kind, InspectionQueue[Queued]] = {
            kind: InspectionQueue(settings.detector_queue_rows) for kind in KINDS
        }
        self.dropped: Counter[Kind] = Counter()
        self._configuring = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        registry.register(_DroppedRows(self.dropped))

    # ---- life ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the kept configurations (`fitting`), fit them again in a worker thread, and start inspecting."""
        for config in self._table.load():
            self._track(RunningDetector(config, self._tallied(config.body)))
        self._tasks = [asyncio.create_task(self._inspect(kind), name=f"{kind} detection") for kind in KINDS]
        self._tasks.append(asyncio.create_task(self._restore(list(self._by_id.values())), name="detectors' refit"))

    async def stop(self) -> None:
        """Stop inspecting; send the findings queued; close the predictors' connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for running in list(self._by_id.values()):
            await self._retire(running)
        await self._reports.close()

    # ---- configuring ---------------------------------------------------------------------------------------
    async def add(self, kind: Kind, body: DetectorBody) -> tuple[RunningDetector, str | None]:
        """Fit and run the detector `body` configures, in place of the model's detector of that kind (whose id is
        answered too, None if it had none). NotFound or InvalidInput name what is missing or wrong."""
        if isinstance(body, OutlierBody):
            detector = await asyncio.to_thread(fit_outliers, self._store, body)
            kept: dict[str, Any] = {}
            fitted = {"columns": detector.columns, "threshold": detector.threshold}
            adversarial = None
        else:
            assert isinstance(body, AdversarialBody)
            columns, clean = await asyncio.to_thread(clean_rows, self._store, body)
            adversarial, kept = await fit_adversarial(clean, body, self._settings)
            kept["columns"] = columns
            fitted = self._fitted(body, kept)
        config = DetectorConfig(str(uuid.uuid4()), kind, body, time.time(), kept)
        running = RunningDetector(config, self._tallied(body))
        async with self._configuring:
            old = self._current.get(running.key)
            try:
                await asyncio.to_thread(self._table.put, config, old.config.id if old else None)
            except BaseException:
                if adversarial is not None:
                    await _close(adversarial)
                raise
            if old is not None:
                await self._retire(old)
            self._track(running)
            self._ready(running, self._inspector(running, detector if adversarial is None else adversarial), fitted)
        return running, old.config.id if old else None

    async def delete(self, detector_id: str) -> RunningDetector:
        """Stop and forget detector `detector_id` (NotFound naming the detectors there are)."""
        async with self._configuring:
            running = self.get(detector_id)
            await asyncio.to_thread(self._table.remove, detector_id)
            await self._retire(running)
        return running

    def get(self, detector_id: str) -> RunningDetector:
        running = self._by_id.get(detector_id)
        if running is None:
            known = sorted(self._by_id)
            raise NotFound(f"no detector '{detector_id}'" + (f"; the detectors are {known}" if known else ""))
        return running

    def listed(self) -> list[RunningDetector]:
        """Every detector, oldest first."""
        return sorted(self._by_id.values(), key=lambda running: running.config.created)

    # ---- what they say -------------------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        """Per model with detectors, per kind: rows inspected, detected and their rate (`wharf.monitor.status`)."""
        out: dict[str, dict[str, Any]] = {}
        for (kind, model), running in sorted(self._current.items()):
            tally = running.reports.tally
            out.setdefault(model, {})[kind] = {
                "inspected": tally["inspected"],
                "detected": tally["detected"],
                "rate": rate(tally["detected"], tally["inspected"]),
            }
        return out

    # ---- feeding -------------------------------------------------------------------------------------------
    def offer(self, event: Event, exchange: Exchange) -> None:
        """Queue a stored exchange for its model's ready detectors (the ingest's `on_stored` hook)."""
        watching = self._watching.get(exchange.model)
        if watching is None:
            return
        origin = Origin(event.id, event.service, event.namespace, event.component or PREDICTOR, exchange.revision)
        rows = exchange.inputs.rows
        for kind, running in watching.items():
            if not self._queues[kind].offer((running, origin, exchange.inputs), rows):
                running.reports.tally["dropped"] += rows
                self.dropped[kind] += rows

    async def _inspect(self, kind: Kind) -> None:
        """Score what is queued for detectors of `kind`, batch after batch, until cancelled."""
        queue = self._queues[kind]
        while True:
            batch = await queue.take(self._settings.detector_batch_rows)
            by_detector: dict[int, tuple[RunningDetector, list[Any]]] = {}
            for running, origin, table in batch:
                if running.inspector is None:  # deleted or replaced meanwhile
                    continue
                rows = self._rows(running, origin, table)
                if rows is not None:
                    by_detector.setdefault(id(running), (running, []))[1].append((origin, rows))
            for running, items in by_detector.values():
                await self._run(running, items)

    async def _run(self, running: RunningDetector, items: list[tuple[Origin, np.ndarray]]) -> None:
        from wharf.monitor.detectors.inspection import Logged

        inspector = running.inspector
        if inspector is None:
            return
        logged = [Logged(origin, rows) for origin, rows in items]
        try:
            if running.config.kind == "outliers":
                await inspector.inspect_outliers(logged)
            else:
                await inspector.inspect_adversarial(logged)
        except Exception:  # a batch must never end the inspection
            log.exception("%s detection failed on a batch", running.config.kind, extra={"model": running.config.model})

    def _rows(self, running: RunningDetector, origin: Origin, table: Table) -> np.ndarray | None:
        """An exchange's input rows, float64 [rows, inputs] in the model's column order; None (counted as failed)
        when they cannot be."""
        model = running.config.model
        try:
            _, columns = self._store.schema(model).inputs.fit(table, model)
            return np.column_stack(columns).astype(np.float64, copy=False)
        except (WharfError, ValueError, TypeError):
            running.reports.count(LABELS[running.config.kind], origin, 0, failed=table.rows)
            return None

    # ---- bookkeeping ---------------------------------------------------------------------------------------
    async def _restore(self, restored: Iterable[RunningDetector]) -> None:
        """Fit the detectors loaded at start-up again, one after the other, in a worker thread."""
        for running in restored:
            try:
                detector, fitted = await asyncio.to_thread(self._refit, running.config)
            except WharfError as error:
                running.state, running.error = "failed", error.message
            except Exception as error:
                log.exception("detector %s could not be fitted again", running.config.id)
                running.state, running.error = "failed", f"internal error: {type(error).__name__}: {error}"
            else:
                if self._by_id.get(running.config.id) is running:
                    self._ready(running, self._inspector(running, detector), fitted)
                elif running.config.kind == "adversarial":
                    await _close(detector)
            if running.state == "failed":
                log.warning("detector %s not restored: %s", running.config.id, running.error)

    def _refit(self, config: DetectorConfig) -> tuple[Any, dict[str, Any]]:
        """The detector of a kept configuration, and what its fit found (blocking)."""
        if isinstance(config.body, OutlierBody):
            detector = fit_outliers(self._store, config.body)
            return detector, {"columns": detector.columns, "threshold": detector.threshold}
        assert isinstance(config.body, AdversarialBody)
        return restore_adversarial(config.body, config.kept, self._settings), self._fitted(config.body, config.kept)

    def _fitted(self, body: AdversarialBody, kept: dict[str, Any]) -> dict[str, Any]:
        return {**kept, "host": predictor_host(body, self._settings)}

    def _inspector(self, running: RunningDetector, detector: Any) -> Inspector:
        from wharf.monitor.detectors.inspection import Inspector
        from wharf.monitor.detectors.sampling import Sampler

        body = running.config.body
        if isinstance(body, AdversarialBody):
            return Inspector(running.reports, adversarial=detector, sampler=Sampler(body.sample_rate))
        return Inspector(running.reports, outliers=detector)

    def _tallied(self, body: DetectorBody) -> TalliedReports:
        return TalliedReports(self._reports, body.reply_url or self._settings.reply_url)

    def _track(self, running: RunningDetector) -> None:
        self._by_id[running.config.id] = running
        self._current[running.key] = running

    def _ready(self, running: RunningDetector, inspector: Inspector, fitted: dict[str, Any]) -> None:
        running.state, running.error, running.inspector, running.fitted = "ready", None, inspector, fitted
        kind, model = running.key
        self._watching.setdefault(model, {})[kind] = running

    async def _retire(self, running: RunningDetector) -> None:
        """Forget a detector: nothing more is queued for it, what is queued is left, its predictor is closed."""
        kind, model = running.key
        self._by_id.pop(running.config.id, None)
        if self._current.get(running.key) is running:
            del self._current[running.key]
        watching = self._watching.get(model, {})
        if watching.get(kind) is running:
            del watching[kind]
            if not watching:
                del self._watching[model]
        inspector, running.inspector = running.inspector, None
        if inspector is not None and inspector.adversarial is not None:
            await _close(inspector.adversarial)


async def _close(detector: AdversarialDetector) -> None:
    close = getattr(detector.predict, "close", None)
    if close is not None:
        await close()


class _DroppedRows(Collector):
    """`wharf_monitor_detector_dropped_rows_total{detector}`: rows not inspected, their kind's queue being full."""

    def __init__(self, dropped: Counter[Kind]) -> None:
        self._dropped = dropped

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "wharf_monitor_detector_dropped_rows",
            "logged rows not inspected: their detectors' queue was full",
            labels=["detector"],
        )
        for kind in KINDS:
            family.add_metric([LABELS[kind]], self._dropped[kind])
        yield family
