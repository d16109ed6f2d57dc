"""Prometheus metrics of the model server.

Per request: answers by model, protocol and status, their latency, and the requests in flight. In one process the
event loop only counts a request in flight in a dict and notes its answer in a list (about 0.2 µs per request in
all); the notes are tallied in bulk at every scrape and within a second (a timer) into numpy arrays, a row of bucket
counts and a latency sum per label set (`_Answers`), which a scrape renders as the counter and the histogram: a dict
lookup per answer and one numpy pass, whatever the number of label sets. Updating prometheus-client's children per
request cost several µs more, most of it on their locks and per-model objects (requests spread over a thousand
models found them out of cache), and publishing to them in bulk still cost a numpy pass and a few locked increments
per label set each second (5.5 ms each 0.25 s for a Zipf spread over 1,000 models: bench/diagnosis/mms_cpu.py).
With several processes, see below. Per model, from its worker threads (`ModelFigures`): how long each request
waited for a worker, the rows of each call, and the time of each step of a call (preprocess, predict, postprocess:
a batch is one call). The worker threads only append those figures to deques (thread-safe, about 40 ns each: about
0.2 µs per request in all); they are added to the histograms in bulk at every scrape, and by the worker threads
about once a second, busy or idle (so that with several worker processes the one scraped shows every process's
figures a second later): the values of all the children of one histogram are put in buckets by one numpy pass
(`_observe_all`), then each child takes one locked increment per bucket it has values in, plus its sum (a numpy
pass per child cost about 10 µs each: 5.8 ms per flush of the shared threads under that spread). Models loaded on
demand share worker threads (dataplane.py): their queue wait and rows per call are those of model `(shared)`, and
they have no children of their own for those.

With several worker processes (`PROMETHEUS_MULTIPROC_DIR` set before start), every process writes its samples
to that directory and any of them renders the aggregate. A scrape reaches one process only, so there each answer
goes straight to its label set's counter and histogram children (kept, not looked up per request) and the in-flight
gauge follows each request: five writes to the memory-mapped files, each under prometheus-client's lock, about 8 µs
per request (timeit of `started` and `finished`; 25 µs when each answer went through the bulk publishing alone).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from prometheus_client.registry import Collector

from wharf.errors import WharfError
from wharf.server.runner import Job

T = TypeVar("T")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LOAD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_FLUSH_S = 1.0  # figures noted reach the histograms at most this much later
_ANSWERED_HELD = 4096  # answers noted before they are published at once, whatever the time
_MAKING = threading.Lock()  # held while a model's worker threads make its group figures
_ANSWER_LABELS = ("model", "protocol", "status")
_REQUESTS = "wharf_requests", "Inference requests answered."
_LATENCY = "wharf_request_duration_seconds", "Time from a request's arrival to its answer."
SHARED = "(shared)"  # the model label of the figures of worker threads that models share


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.registry = CollectorRegistry(auto_describe=True)
        if self.multiprocess:  # answers go to prometheus-client's file-backed children at once
            self.requests = Counter(*_REQUESTS, _ANSWER_LABELS, registry=self.registry)
            self.latency = Histogram(*_LATENCY, _ANSWER_LABELS, buckets=_LATENCY_BUCKETS, registry=self.registry)
        else:  # answers are noted, then tallied in bulk
            self._answers = _Answers()
            self.registry.register(self._answers)
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
        self.step_seconds = Histogram(
            "wharf_model_step_seconds",
            "Time of one call of a model's step (preprocess, predict, postprocess); a batch is one call.",
            ["model", "step"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.load_duration = Histogram(
            "wharf_model_load_duration_seconds",
            "Time each model load took (at start, through the repository API, or on a request).",
            buckets=_LOAD_BUCKETS,
            registry=self.registry,
        )
        self._in_flight: dict[str, int] = {}  # requests being served, by model
        self._in_flight_gauges: dict[str, Gauge] = {}  # with several processes: each model's gauge child
        self._answer_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}  # by label set
        self._answered: list[tuple[str, str, int, float]] = []  # (model, protocol, status, seconds) not published
        self._publishing: asyncio.TimerHandle | None = None
        self._models: dict[str, ModelFigures] = {}
        self._shared: _SharedFigures | None = None

    def model_loaded(self, model: str, version: str | None, seconds: float) -> None:
        self.load_seconds.labels(model, version or "").set(seconds)
        self.load_duration.observe(seconds)

    def watch_repository(self, summary: Callable[[], Mapping[str, Any]]) -> None:
        """Report the model repository's `summary` (`ModelRepository.memory`) at every scrape."""
        self.registry.register(_RepositoryCollector(summary))

    def in_flight_of(self, model: str) -> int:
        """The requests for `model` this process is serving now."""
        return self._in_flight.get(model, 0)

    def started(self, model: str) -> None:
        counts = self._in_flight
        counts[model] = counts.get(model, 0) + 1
        if self.multiprocess:
            gauge = self._in_flight_gauges.get(model)
            if gauge is None:
                gauge = self._in_flight_gauges[model] = self.in_flight.labels(model)
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
        """Note an answer (on the event loop): published at the next scrape, within a second, or at once with
        several processes (whose scrapes read each other's figures)."""
        self._in_flight[model] -= 1
        if self.multiprocess:
            self._in_flight_gauges[model].dec()  # (made by `started`)
            requests, latency = self._answer_children_of(model, protocol, status)
            requests.inc()
            latency.observe(seconds)
            return
        self._answered.append((model, protocol, status, seconds))
        if len(self._answered) >= _ANSWERED_HELD:
            self._publish_answered()
        elif self._publishing is None:
            self._publishing = asyncio.get_running_loop().call_later(_FLUSH_S, self._publish_answered)

    def _publish_answered(self) -> None:
        """Add the answers noted so far to the tally of answers (one process)."""
        if self._publishing is not None:
            self._publishing.cancel()
            self._publishing = None
        answered, self._answered = self._answered, []
        if answered:
            self._answers.add(answered)

    def _answer_children_of(self, model: str, protocol: str, status: int) -> tuple[Counter, Histogram]:
        """The request counter and latency histogram children of an answer's label set."""
        key = (model, protocol, status)
        children = self._answer_children.get(key)
        if children is None:
            labels = (model, protocol, str(status))
            children = self._answer_children[key] = (self.requests.labels(*labels), self.latency.labels(*labels))
        return children

    def model_observer(self, model: str) -> ModelFigures:
        """What the worker threads of `model` report to (the same for every version and reload of it)."""
        figures = self._models.get(model)
        if figures is None:
            figures = self._models[model] = ModelFigures(self, model)
        return figures

    def shared_observer(self) -> ModelFigures:
        """What the worker threads models share report to: their queue wait and rows per call under the model
        label `SHARED`; flushing it (about once a second) flushes every model's step times too."""
        self._shared = _SharedFigures(self)
        return self._shared

    def render(self) -> bytes:
        if not self.multiprocess:
            self._publish_answered()
        if not self.multiprocess:  # (with several processes, each request sets its gauge: see `started`)
            for model, count in self._in_flight.items():
                self.in_flight.labels(model).set(count)
        figures = list(self._models.values())
        if self._shared is not None:
            figures.append(self._shared)
        _flush_all(figures)
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


class _Answers(Collector):
    """The answers of one process by label set (model, protocol, status): counts per latency bucket and latency
    sums in numpy arrays, a row per label set. Adding answers costs one numpy pass and a dict lookup per answer,
    whatever the number of label sets; a scrape reads them as the `wharf_requests` counter and the
    `wharf_request_duration_seconds` histogram."""

    def __init__(self) -> None:
        self._bounds = np.array([*_LATENCY_BUCKETS, math.inf])
        self._les = [floatToGoString(bound) for bound in self._bounds.tolist()]
        self._rows: dict[tuple[str, str, int], int] = {}
        self._labels: list[tuple[str, str, str]] = []
        self._created: list[float] = []
        self._counts = np.zeros((16, len(self._bounds)), np.int64)
        self._sums = np.zeros(16)

    def add(self, answered: list[tuple[str, str, int, float]]) -> None:
        """Count `answered` ((model, protocol, status, seconds) each)."""
        rows = self._rows
        owners = []
        for model, protocol, status, _ in answered:
            row = rows.get((model, protocol, status))
            if row is None:
                row = self._new_row(model, protocol, status)
            owners.append(row)
        used = len(self._labels)
        seconds = np.fromiter((answer[3] for answer in answered), np.float64, len(answered))
        counts, sums = _bucketed(self._bounds, np.array(owners), seconds, used)
        self._counts[:used] += counts
        self._sums[:used] += sums

    def _new_row(self, model: str, protocol: str, status: int) -> int:
        row = self._rows[model, protocol, status] = len(self._labels)
        self._labels.append((model, protocol, str(status)))
        self._created.append(time.time())
        if row == len(self._sums):
            self._counts = np.concatenate([self._counts, np.zeros_like(self._counts)])
            self._sums = np.concatenate([self._sums, np.zeros_like(self._sums)])
        return row

    def collect(self) -> Iterator[Metric]:
        used = len(self._labels)
        requests = CounterMetricFamily(*_REQUESTS, labels=_ANSWER_LABELS)
        latency = HistogramMetricFamily(*_LATENCY, labels=_ANSWER_LABELS)
        cumulative = np.cumsum(self._counts[:used], axis=1).tolist()
        for labels, created, buckets, total in zip(self._labels, self._created, cumulative, self._sums.tolist()):
            requests.add_metric(labels, buckets[-1], created=created)
            latency.add_metric(labels, list(zip(self._les, buckets)), total)
        yield requests
        yield latency

    def describe(self) -> Iterator[Metric]:
        return iter(())


class _RepositoryCollector(Collector):
    """The repository's figures, read when scraped: models loaded, loads, evictions, cache hits and memory."""

    def __init__(self, summary: Callable[[], Mapping[str, Any]]) -> None:
        self._summary = summary

    def collect(self) -> Iterator[Metric]:
        figures = self._summary()
        yield GaugeMetricFamily("wharf_models_loaded", "Models in memory.", figures["models_loaded"])
        yield GaugeMetricFamily("wharf_models_registered", "Models the replica serves.", figures["models_registered"])
        for name, help_text in (
            ("loads", "Model loads."),
            ("evictions", "Models evicted to make room for another (least recently used first)."),
            ("load_failures", "Model loads that failed."),
            ("hits", "Requests for a model already in memory (cache hits)."),
            ("misses", "Requests that waited for their model to load (cache misses)."),
        ):
            yield CounterMetricFamily(f"wharf_model_{name}", help_text, figures[name])
        yield GaugeMetricFamily(
            "wharf_model_memory_used_bytes", "Measured bytes of the models in memory.", figures["used_bytes"]
        )
        budget = figures["budget_bytes"]
        if budget is not None:
            yield GaugeMetricFamily("wharf_model_memory_budget_bytes", "Bytes the models may hold.", budget)

    def describe(self) -> Iterator[Metric]:
        return iter(())


class ModelFigures:
    """A model's figures from its worker threads (see the module docstring); a `wharf.server.runner.ModelObserver`."""

    def __init__(self, metrics: ServerMetrics, model: str) -> None:
        self._metrics = metrics
        self._model = model
        self._step_seconds = metrics.step_seconds
        self._steps: dict[str, _Pending] = {}  # those the model has
        self._pending: list[_Pending] = []  # its steps' and its groups': what `flush` flushes
        self._depth = self._depth_shown = 0
        self._flush_at = 0.0
        # Made by the first group: a model served by the shared worker threads has none (its groups are the
        # shared threads'), and a thousand such models would hold 9 kB of histogram children each for nothing.
        self._sizes: _Pending | None = None
        self._waits: _Pending
        self._depth_gauge: Gauge

    def _grouped(self) -> None:
        """Make the figures of the model's own groups (rows per call, queue wait, queue depth), once."""
        with _MAKING:
            if self._sizes is None:
                metrics, model = self._metrics, self._model
                self._depth_gauge = metrics.queue_depth.labels(model)
                self._waits = _Pending(metrics.queue_wait, metrics.queue_wait.labels(model))
                sizes = _Pending(metrics.batch_size, metrics.batch_size.labels(model))
                self._pending += [sizes, self._waits]
                self._sizes = sizes

    def group(self, jobs: list[Job], now: float, waiting: int) -> None:
        """A group of `jobs` is about to run at `now` (`time.perf_counter`), `waiting` requests left in the queue."""
        if self._sizes is None:
            self._grouped()
        if len(jobs) == 1:
            job = jobs[0]
            self._sizes.append(job.size)
            self._waits.append(now - job.queued_at)
        else:
            self._sizes.append(sum(job.size for job in jobs))
            for job in jobs:
                self._waits.append(now - job.queued_at)
        self._depth = waiting
        if now >= self._flush_at:
            self._flush_at = now + _FLUSH_S
            self.flush()

    def step(self, name: str) -> Callable[[float], None]:
        """What records the seconds one call of the step `name` took."""
        pending = self._steps.get(name)
        if pending is None:
            pending = self._steps[name] = _Pending(self._step_seconds, self._step_seconds.labels(self._model, name))
            self._pending.append(pending)
        return pending.append

    def flush(self) -> None:
        """Add the figures recorded so far to the histograms."""
        _flush_all([self])

    def _taken(self, observed: dict[Histogram, list[tuple[Histogram, list[float]]]]) -> None:
        """Take the figures recorded so far into `observed` (by parent histogram), and show the queue depth (a
        model with nothing recorded costs a few checks: the shared threads' figures flush every model's)."""
        if self._depth != self._depth_shown:
            self._depth_shown = self._depth
            self._depth_gauge.set(self._depth)
        for pending in self._pending:
            if pending._values:
                taken = pending.taken()
                if taken:
                    observed.setdefault(pending.family, []).append((pending.child, taken))


class _SharedFigures(ModelFigures):
    def __init__(self, metrics: ServerMetrics) -> None:
        super().__init__(metrics, SHARED)
        self._all = metrics._models

    def flush(self) -> None:
        """Its own figures and every model's, each histogram's in one pass."""
        _flush_all([self, *list(self._all.values())])


def _flush_all(figures: Iterable[ModelFigures]) -> None:
    """Add what each of `figures` recorded to the histograms, the values of each histogram's children at once."""
    observed: dict[Histogram, list[tuple[Histogram, list[float]]]] = {}
    for each in figures:
        each._taken(observed)
    for children in observed.values():
        _observe_all(children)


class _Pending:
    """Values recorded for a histogram's child: appended by any thread, taken in bulk by `taken`."""

    __slots__ = ("append", "_values", "family", "child")

    def __init__(self, family: Histogram, child: Histogram) -> None:
        self._values: deque[float] = deque()
        self.append = self._values.append
        self.family, self.child = family, child

    def taken(self) -> list[float]:
        """The values recorded so far, removed (those another thread appends meanwhile stay for the next)."""
        values = self._values
        taken = []
        try:
            for _ in range(len(values)):
                taken.append(values.popleft())
        except IndexError:  # another thread took them meanwhile
            pass
        return taken


def _observe_all(observed: list[tuple[Histogram, list[float]]]) -> None:
    """What `child.observe` of each of its values does, for each (child, values) of `observed`, children of one
    histogram (the same buckets): prometheus-client (pinned) has no bulk observe, so this adds to each child's
    bucket counts and sum as `observe` does one at a time, after one numpy pass over every child's values."""
    sizes = [len(values) for _, values in observed]
    amounts = np.fromiter(itertools.chain.from_iterable(values for _, values in observed), np.float64, sum(sizes))
    owners = np.repeat(np.arange(len(observed)), sizes)
    counts, sums = _bucketed(observed[0][0]._upper_bounds, owners, amounts, len(observed))
    for row, bucket in zip(*(index.tolist() for index in np.nonzero(counts))):
        observed[row][0]._buckets[bucket].inc(int(counts[row, bucket]))
    for (child, _), total in zip(observed, sums.tolist()):
        child._sum.inc(total)


def _bucketed(bounds: np.ndarray, owners: np.ndarray, amounts: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per owner row (`rows` of them), how many of its `amounts` fall in each bucket of upper `bounds` (the last
    +inf; a value equal to a bound counts in that bucket, as `Histogram.observe` counts it), and their sum."""
    width = len(bounds)
    cells = owners * width + np.searchsorted(bounds, amounts, side="left")
    counts = np.bincount(cells, minlength=rows * width).reshape(rows, width)
    return counts, np.bincount(owners, weights=amounts, minlength=rows)
