"""Scheduled metrics (TrustyAI's `/request` endpoints): registered requests, recomputed every `interval_s` seconds
and exported as Prometheus gauges (`gauges`), with an alert state each.

A request is checked when it is registered (the model, its columns and the reference data must exist; inferences
need not yet) and kept in the database (`schedule_store`), so that a new scheduler on the same file has it again.
Each round computes every request in a worker thread, so that the event loop never waits on the rows or the
statistics; within a round, requests that read the same rows (model, tag, batch size) read them once. A request
whose computation fails keeps its error (listed with it) until one succeeds; the round goes on with the others.
The clock (Unix seconds, for the alert states) and the sleep between rounds are injected for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
from prometheus_client.registry import CollectorRegistry

from wharf.errors import InvalidInput, NotFound, WharfError
from wharf.monitor.data import Rows
from wharf.monitor.metrics.gauges import MetricGauges
from wharf.monitor.metrics.registry import KINDS, find
from wharf.monitor.metrics.results import Result
from wharf.monitor.metrics.schedule_store import ScheduleStore, StoredRequest
from wharf.monitor.metrics.scheduled import ScheduledRequest, Status
from wharf.monitor.metrics.settings import MetricsSettings

log = logging.getLogger(__name__)


class Scheduler:
    """Registered metric requests over `rows`, kept in the SQLite file `database`, exported to `registry`."""

    def __init__(
        self,
        rows: Rows,
        database: str | Path,
        registry: CollectorRegistry,
        settings: MetricsSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._rows = rows
        self._store = ScheduleStore(database)
        self._interval_s = (settings or MetricsSettings()).interval_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()  # the scheduled requests are read by scrapes and request threads too
        self._scheduled: dict[UUID, tuple[ScheduledRequest, Status]] = {}
        self._task: asyncio.Task[None] | None = None
        self._computing: asyncio.Future[dict[UUID, Result | str]] | None = None  # the latest round's thread
        for stored in self._store.load():
            self._restore(stored)
        registry.register(MetricGauges(self.snapshot))

    def _restore(self, stored: StoredRequest) -> None:
        try:
            metric = find(stored.metric)
            request = metric.parse(stored.body)
        except WharfError as error:
            log.warning("scheduled metric %s not restored: %s", stored.id, error.message)
            return
        self._scheduled[stored.id] = (ScheduledRequest(stored.id, metric, request, stored.registered), Status())

    def register(self, name: str, body: Mapping[str, Any]) -> ScheduledRequest:
        """Schedule metric `name` for the request `body`; InvalidInput or NotFound naming what is wrong. Blocking:
        reads the model's columns and reference data, and writes the database."""
        metric = find(name)
        request = metric.parse(body)
        metric.check(request, self._rows)
        scheduled = ScheduledRequest(uuid.uuid4(), metric, request, self._clock())
        body = request.model_dump(mode="json", by_alias=True, exclude_none=True)
        self._store.add(StoredRequest(scheduled.id, metric.name, body, scheduled.registered))
        with self._lock:
            self._scheduled[scheduled.id] = (scheduled, Status())
        return scheduled

    def delete(self, request_id: UUID, name: str | None = None) -> None:
        """Stop computing request `request_id` (of metric `name`, when given); NotFound if there is no such one.
        Blocking: writes the database."""
        with self._lock:
            found = self._scheduled.get(request_id)
        if found is None or (name is not None and found[0].metric is not find(name)):
            of = "" if name is None else f" of metric {name}"
            raise NotFound(f"requestId: no scheduled request {request_id}{of}")
        self._store.remove(request_id)
        with self._lock:
            self._scheduled.pop(request_id, None)

    def snapshot(self) -> list[tuple[ScheduledRequest, Status]]:
        """Every scheduled request with its status, in the order they were registered."""
        with self._lock:
            return list(self._scheduled.values())

    def listed(self, name: str | None = None, kind: str | None = None) -> list[tuple[ScheduledRequest, Status]]:
        """The scheduled requests of metric `name`, or of a kind of metric ("drift", "fairness"), or all."""
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"type: no kind of metric {kind!r} (kinds: all, {', '.join(KINDS)})")
        metric = None if name is None else find(name)
        return [
            entry
            for entry in self.snapshot()
            if (metric is None or entry[0].metric is metric) and (kind is None or entry[0].metric.kind == kind)
        ]

    def counts(self, model: str) -> dict[str, int]:
        """How many requests of each metric `model` has scheduled (TrustyAI's `metricCounts`)."""
        return dict(Counter(s.metric.name for s, _ in self.snapshot() if s.request.model_id == model))

    async def recompute(self) -> None:
        """One round: compute every scheduled request once."""
        requests = [scheduled for scheduled, _ in self.snapshot()]
        if not requests:
            return
        self._computing = asyncio.ensure_future(asyncio.to_thread(_compute_all, requests, self._rows))
        outcomes = await asyncio.shield(self._computing)  # stop() waits for the thread rather than leave it
        now = self._clock()
        with self._lock:
            for request_id, outcome in outcomes.items():
                if request_id in self._scheduled:  # else deleted meanwhile
                    scheduled, status = self._scheduled[request_id]
                    if isinstance(outcome, Result):
                        status = status.computed(outcome, now)
                    else:
                        status = status.failed(outcome, now)
                    self._scheduled[request_id] = (scheduled, status)

    def start(self) -> None:
        """Start recomputing every `interval_s` seconds, the first round at once (call it in the event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._rounds(), name="scheduled metrics")

    async def stop(self) -> None:
        """Stop recomputing, once a round under way is done reading rows (its results are dropped)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._computing is not None:
            await asyncio.wait([self._computing])

    async def _rounds(self) -> None:
        while True:
            try:
                await self.recompute()
            except Exception:  # a round must never end the schedule
                log.exception("scheduled metrics: the round failed")
            await self._sleep(self._interval_s)


def _compute_all(requests: list[ScheduledRequest], rows: Rows) -> dict[UUID, Result | str]:
    """Each request's result, or the error that kept it from one."""
    shared = _RoundReads(rows)
    outcomes: dict[UUID, Result | str] = {}
    for scheduled in requests:
        try:
            outcomes[scheduled.id] = scheduled.metric.compute(scheduled.request, shared)
        except WharfError as error:
            outcomes[scheduled.id] = error.message
        except Exception as error:
            log.exception("scheduled metric %s failed", scheduled.id)
            outcomes[scheduled.id] = f"internal error: {type(error).__name__}: {error}"
    return outcomes


class _RoundReads:
    """`rows` read once per round: what one request reads, another of the same model gets again for free."""

    def __init__(self, rows: Rows) -> None:
        self._rows = rows
        self._read: dict[tuple[Any, ...], Any] = {}

    def _once(self, method: str, *args: Any) -> Any:
        key = (method, *args)
        if key not in self._read:
            self._read[key] = getattr(self._rows, method)(*args)
        return self._read[key]

    def input_names(self, model: str) -> list[str]:
        return self._once("input_names", model)

    def output_names(self, model: str) -> list[str]:
        return self._once("output_names", model)

    def reference(self, model: str, tag: str) -> pd.DataFrame:
        return self._once("reference", model, tag)

    def inferences(self, model: str, last: int | None = None) -> pd.DataFrame:
        return self._once("inferences", model, last)

    def labelled(self, model: str, last: int | None = None) -> pd.DataFrame:
        return self._once("labelled", model, last)
