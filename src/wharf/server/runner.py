"""Runs a model's blocking code in dedicated worker threads, so that the event loop never blocks.

Requests queue in arrival order (bounded: a full queue is refused at once with `ServerBusy`). A worker thread
that is free takes every request waiting, up to a size limit, and hands the group to a dispatch function: one
call per request, or one merged call for a batch (see `batching.py`). A lone request is dispatched at once; only
while requests keep arriving together does a worker wait for more: up to `max_wait_s` after the group's first
request arrived, and never longer than ten of its recent calls took.

A model's observer (server/metrics.py) hears of each group as it starts, and is told to flush what it recorded by a
worker that has been idle for a second.

While tracing is on (`wharf.telemetry.tracing`), a request submitted within a span gets two spans under it when its
group runs: `queue wait` (from its submission to the group's start) and `batch` (the group's run, with the
attributes `wharf.batch.size`, the group's rows, and `wharf.batch.requests`); the model's steps record theirs under
`batch` (`traced_batches`, see pipeline.py). Off, a submission and a group pay one check of `tracing.enabled` each.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from wharf.errors import RequestTimeout, ServerBusy
from wharf.telemetry import tracing

_STOP = object()
_PATIENCE_CALLS = 10
_IDLE_FLUSH_S = 1.0

Outcome = tuple[Any, BaseException | None]
_group = threading.local()  # a worker's `batch` spans while its group runs


def traced_batches() -> Sequence[Any]:
    """The `batch` spans of the group this worker thread runs (none outside a traced group)."""
    return getattr(_group, "batches", ())


@dataclass(slots=True)
class Job:
    payload: Any
    future: asyncio.Future[Any]
    size: int
    queued_at: float
    trace: Any = None  # the context it was submitted in, while tracing is on


Dispatch = Callable[[list[Job]], list[Outcome]]


class ModelObserver(Protocol):
    """What a model's worker threads report (server/metrics.py keeps it), from any thread, each at the cost of an
    append or so."""

    def group(self, jobs: list[Job], now: float, waiting: int) -> None:
        """A group of `jobs` is about to run at `now` (`time.perf_counter`), `waiting` requests left queued."""

    def step(self, name: str) -> Callable[[float], None]:
        """What records the seconds one call of the step `name` (preprocess, predict, postprocess) took."""
        ...

    def flush(self) -> None:
        """Publish what was recorded (called by an idle worker about once a second)."""


def one_by_one(fn: Callable[[Any], Any]) -> Dispatch:
    """A dispatch that calls `fn` once per job; one job's failure is its own."""

    def dispatch(jobs: list[Job]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for job in jobs:
            try:
                outcomes.append((fn(job.payload), None))
            except Exception as error:  # handed to the job's caller, who maps it
                outcomes.append((None, error))
        return outcomes

    return dispatch


def _yield_on_wakeup() -> None:
    """Let the calling worker thread no longer preempt other threads when it wakes (Linux `SCHED_BATCH`).

    A worker woken by a new request would otherwise preempt the event loop on a shared core at once, only to wait
    for the GIL the loop holds: two context switches and cold caches for every request. A `SCHED_BATCH` thread keeps
    its fair share of the CPU and runs as soon as the loop waits or its time slice ends; with a core to itself
    nothing changes. Measured on one core: gRPC ModelInfer 2.8k -> 4.7k calls/s (see docs/PERFORMANCE.md).
    """
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # 0: the calling thread
    except (AttributeError, OSError):  # not Linux, or not allowed here: keep the default policy
        pass


class ThreadRunner:
    def __init__(
        self,
        dispatch: Dispatch,
        *,
        name: str,
        threads: int = 1,
        max_queue: int = 1024,
        max_group_size: int = 1,
        max_wait_s: float = 0.0,
        timeout_s: float = 60.0,
        observer: ModelObserver | None = None,
    ) -> None:
        self._dispatch = dispatch
        self._timeout_s = timeout_s
        self._deadlines: deque[tuple[float, asyncio.Future[Any]]] = deque()  # in submission order
        self._sweeping = False
        self._name = name
        self._max_queue = max_queue
        self._max_group_size = max_group_size
        self._max_wait_s = max_wait_s
        self._observer = observer
        self._loop = asyncio.get_running_loop()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.depth = 0  # submitted and not yet answered; touched on the event loop only
        self._threads = [
            threading.Thread(target=self._work, name=f"wharf-{name}-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, payload: Any, size: int = 1) -> asyncio.Future[Any]:
        if self.depth >= self._max_queue:
            raise ServerBusy(f"model '{self._name}' has {self.depth} requests queued; retry later")
        future = self._loop.create_future()
        self.depth += 1
        now = time.perf_counter()
        self._queue.put(Job(payload, future, size, now, tracing.current() if tracing.enabled else None))
        self._deadlines.append((now + self._timeout_s, future))
        if not self._sweeping:
            self._sweeping = True
            self._loop.call_later(self._sweep_period, self._sweep)
        return future

    @property
    def _sweep_period(self) -> float:
        return min(0.1, self._timeout_s / 10)

    def _sweep(self) -> None:
        """Fail requests past their deadline with `RequestTimeout` (one timer for all, not one per request)."""
        now = time.perf_counter()
        deadlines = self._deadlines
        while deadlines and (deadlines[0][0] <= now or deadlines[0][1].done()):
            _, future = deadlines.popleft()
            if not future.done():
                future.set_exception(RequestTimeout(f"model '{self._name}' did not answer within {self._timeout_s} s"))
        self._sweeping = bool(deadlines)
        if self._sweeping:
            self._loop.call_later(self._sweep_period, self._sweep)

    def close(self) -> None:
        """Stop the threads once the requests already queued are done."""
        for _ in self._threads:
            self._queue.put(_STOP)

    def _work(self) -> None:
        _yield_on_wakeup()
        carry: Job | None = None  # taken from the queue but too big for the group it was taken for
        patience = 0.0  # how long the next group may wait to fill: nothing unless requests came together
        while True:
            first = carry if carry is not None else self._take()
            if first is _STOP:
                return
            group, carry, stop = self._fill(first, patience)
            started = time.perf_counter()
            self._run(group)
            took = time.perf_counter() - started
            # While requests come together, a group waits up to max_wait_s to fill; never more than ten calls'
            # worth, so that a long max_wait_s does not hold a few steady clients back.
            patience = min(self._max_wait_s, _PATIENCE_CALLS * took) if len(group) > 1 else 0.0
            if stop:
                return

    def _take(self) -> Any:
        """The next job, however long it takes to come; an idle worker has the observer flush once a second."""
        if self._observer is None:
            return self._queue.get()
        while True:
            try:
                return self._queue.get(timeout=_IDLE_FLUSH_S)
            except queue.Empty:
                self._observer.flush()

    def _fill(self, first: Job, patience: float) -> tuple[list[Job], Job | None, bool]:
        """Add waiting jobs to `first`'s group up to the size limit, waiting until `patience` after `first` came."""
        group, size = [first], first.size
        deadline = first.queued_at + patience
        while size < self._max_group_size:
            try:
                remaining = deadline - time.perf_counter()
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return group, None, True
            if size + job.size > self._max_group_size:
                return group, job, False
            group.append(job)
            size += job.size
        return group, None, False

    def _run(self, group: list[Job]) -> None:
        live: list[Job] = []
        gone: list[Job] = []  # answered already (deadline) or given up while they were queued
        for job in group:
            (gone if job.future.done() else live).append(job)
        if self._observer is not None and live:
            self._observer.group(live, time.perf_counter(), self._queue.qsize())
        if tracing.enabled and live:
            outcomes = self._traced(live)
        else:
            outcomes = self._dispatch(live) if live else []
        # the whole group's answers in one call: one wake-up of the event loop, not one per request
        answers = [(job.future, result, error) for job, (result, error) in zip(live, outcomes)]
        answers += [(job.future, None, None) for job in gone]
        self._loop.call_soon_threadsafe(self._answer, answers)

    def _traced(self, live: list[Job]) -> list[Outcome]:
        """Dispatch `live` with the `queue wait` and `batch` spans of each job submitted within a span."""
        start_ns, start = time.time_ns(), time.perf_counter()
        attributes = {"wharf.batch.size": sum(job.size for job in live), "wharf.batch.requests": len(live)}
        batches = []
        for job in live:
            if job.trace is not None:
                tracing.recorded("queue wait", job.trace, start_ns - int((start - job.queued_at) * 1e9), start_ns)
                batches.append(tracing.recorded("batch", job.trace, start_ns, attributes=attributes))
        _group.batches = batches
        try:
            return self._dispatch(live)
        finally:
            _group.batches = ()
            for batch in batches:
                batch.end()

    def _answer(self, answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
        self.depth -= len(answers)
        for future, result, error in answers:
            if future.done():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
