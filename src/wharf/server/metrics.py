"""Prometheus metrics of the model server.

With several worker processes (`PROMETHEUS_MULTIPROC_DIR` set before start), every process writes its samples
to that directory and any of them renders the aggregate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable
from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from wharf.errors import WharfError
from wharf.server.runner import GroupObserver, Job

T = TypeVar("T")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "protocol", "status"]
        self.requests = Counter("wharf_requests", "Inference requests answered.", labels, registry=self.registry)
        self.latency = Histogram(
            "wharf_request_duration_seconds",
            "Time from a request's arrival to its answer.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "wharf_requests_in_flight",
            "Inference requests being served.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.load_seconds = Gauge(
            "wharf_model_load_seconds",
            "How long the model took to load.",
            ["model", "version"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.batch_size = Histogram(
            "wharf_batch_size",
            "Rows per predict call.",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "wharf_queue_wait_seconds",
            "Time a request waited for its model's worker.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "wharf_queue_depth",
            "Requests waiting for the model's worker when it last took work.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._in_flight: dict[str, Gauge] = {}

    def model_loaded(self, model: str, version: str | None, seconds: float) -> None:
        self.load_seconds.labels(model, version or "").set(seconds)

    def started(self, model: str) -> None:
        gauge = self._in_flight.get(model)
        if gauge is None:
            gauge = self._in_flight[model] = self.in_flight.labels(model)
        gauge.inc()

    async def measured(self, model: str, protocol: str, call: Awaitable[T]) -> T:
        """Await an inference `call`, counting it in the model's request metrics under `protocol`."""
        started = time.perf_counter()
        self.started(model)
        status = 500
        try:
            result = await call
            status = 200
            return result
        except WharfError as e:
            status = e.http_status
            raise
        finally:
            self.finished(model, protocol, status, time.perf_counter() - started)

    def finished(self, model: str, protocol: str, status: int, seconds: float) -> None:
        key = (model, protocol, status)
        children = self._children.get(key)
        if children is None:
            labels = (model, protocol, str(status))
            children = self._children[key] = (self.requests.labels(*labels), self.latency.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)
        self._in_flight[model].dec()

    def queue_observer(self, model: str) -> GroupObserver:
        """A callback for a model's worker threads: records each group's size, waits and the queue left behind."""
        size, wait, depth = self.batch_size.labels(model), self.queue_wait.labels(model), self.queue_depth.labels(model)

        def observe(jobs: list[Job], now: float, waiting: int) -> None:
            size.observe(sum(job.size for job in jobs))
            for job in jobs:
                wait.observe(now - job.queued_at)
            depth.set(waiting)

        return observe

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
