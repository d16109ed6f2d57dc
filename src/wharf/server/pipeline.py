"""A loaded model's steps (preprocess, predict, postprocess) bound to its worker threads and batching policy.

Each call of each step is timed (two clock reads and an append, about 0.15 µs, per step) for the model's observer.
While tracing is on, each step is a span too, named for it (`preprocess`, `predict`, `postprocess`): a step run in a
worker thread is recorded under the `batch` span of each request of its group (runner.py), an async step is a span
of the request's own, current while it runs (so the calls it makes carry it: a transformer's predictor call).

A pipeline of plain steps without batching may run in worker threads it shares with other models (`shared`, made by
`shared_threads`), as the models a replica loads on demand do: the same hop per request, to threads kept busy.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter, time_ns
from typing import Any

from wharf.errors import RequestTimeout
from wharf.model.base import Model, overrides
from wharf.protocol.v2 import InferRequest
from wharf.server.batching import batched, rows
from wharf.server.runner import ModelObserver, ThreadRunner, one_by_one, traced_batches
from wharf.telemetry import tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """`max_batch_size` rows per call (1: no batching); a worker waits at most `max_latency_s` to fill a batch."""

    max_batch_size: int = 1
    max_latency_s: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1

    def for_model(self, model: Model) -> BatchPolicy:
        """This policy with what the model's own settings override."""
        size = model.max_batch_size if model.max_batch_size is not None else self.max_batch_size
        latency_ms = model.max_batch_latency_ms
        return BatchPolicy(size, latency_ms / 1000 if latency_ms is not None else self.max_latency_s)


Record = Callable[[float], None]  # takes the seconds one call of a step took


def _apply(job: tuple[Callable[[Any], Any], Any, Record]) -> Any:
    step, payload, record = job
    started = perf_counter()
    result = step(payload)
    record(perf_counter() - started)
    return result


def _unrecorded(seconds: float) -> None:
    pass


def _traced(name: str, record: Record) -> Record:
    """`record`, also recording the step's span under the worker's `batch` spans (where it runs in a group)."""

    def traced(seconds: float) -> None:
        record(seconds)
        end = time_ns()
        for batch in traced_batches():
            tracing.recorded(name, batch, end - int(seconds * 1e9), end)

    return traced


class ModelPipeline:
    """Plain steps run in the model's threads, all in a single hop when none is async; async steps run on the
    event loop. With batching on, concurrent requests share one call of the steps."""

    def __init__(
        self,
        model: Model,
        *,
        threads: int,
        max_queue: int,
        timeout_s: float,
        policy: BatchPolicy,
        observer: ModelObserver | None = None,
        shared: ThreadRunner | None = None,
    ) -> None:
        self.model = model
        self._timeout_s = timeout_s
        policy = policy.for_model(model)
        self._steps: list[tuple[Callable[[Any], Any], bool, Record]] = []
        for name in ("preprocess", "predict", "postprocess"):
            if name == "predict" or overrides(model, name):
                step = getattr(model, name)
                record = observer.step(name) if observer else _unrecorded
                if tracing.enabled:
                    record = _traced(name, record)
                self._steps.append((step, inspect.iscoroutinefunction(step), record))
        all_plain = not any(is_async for _, is_async, _ in self._steps)
        self.batching = policy.enabled and model.supports_batching and all_plain
        if policy.enabled and not self.batching:
            reason = "declares it does not support batching" if all_plain else "has async steps"
            log.warning("batching is off for this model", extra={"model": model.name, "reason": reason})
        self._owns_threads = shared is None or self.batching or not all_plain
        if not self._owns_threads:  # plain steps, no batching: `shared` (see `shared_threads`) runs them
            self._threads = shared
            self.run = self._run_shared
            return
        dispatch = (
            batched(model, self._call_chain) if self.batching else one_by_one(self._call_chain if all_plain else _apply)
        )
        self._threads = ThreadRunner(
            dispatch,
            name=model.name,
            threads=threads,
            max_queue=max_queue,
            max_group_size=policy.max_batch_size if self.batching else 1,
            max_wait_s=policy.max_latency_s,
            timeout_s=timeout_s,
            observer=observer,
        )
        self.run: Callable[[InferRequest], Awaitable[Any]] = self._run_chain if all_plain else self._run_steps

    def _call_chain(self, payload: Any) -> Any:
        started = perf_counter()
        for step, _, record in self._steps:
            payload = step(payload)
            ended = perf_counter()
            record(ended - started)
            started = ended
        return payload

    def _run_chain(self, request: InferRequest) -> Awaitable[Any]:
        size = rows(request) or 1  # also what the batch-size metric counts when batching is off
        return self._threads.submit(request, size)

    def _run_shared(self, request: InferRequest) -> Awaitable[Any]:
        return self._threads.submit((self._call_chain, request), rows(request) or 1)

    async def _run_steps(self, payload: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s):
                for step, is_async, record in self._steps:
                    if is_async:
                        started = perf_counter()
                        if tracing.enabled:
                            with tracing.span(step.__name__):
                                payload = await step(payload)
                        else:
                            payload = await step(payload)
                        record(perf_counter() - started)
                    else:
                        payload = await self._threads.submit((step, payload, record))
        except TimeoutError:
            raise RequestTimeout(f"model '{self.model.name}' did not answer within {self._timeout_s} s") from None
        return payload

    def close(self) -> None:
        if self._owns_threads:
            self._threads.close()
        else:  # `run` is its only reference to itself: without it, the pipeline (and its model) go with the last use
            del self.run


def shared_threads(*, threads: int, max_queue: int, timeout_s: float, observer: ModelObserver) -> ThreadRunner:
    """Worker threads that pipelines given them as `shared` run their chains in: many models whose requests
    alternate keep a few threads busy, instead of waking a thread of each model for each request."""
    return ThreadRunner(
        one_by_one(_call_with),
        name="shared",
        threads=threads,
        max_queue=max_queue,
        timeout_s=timeout_s,
        observer=observer,
    )


def _call_with(job: tuple[Callable[[Any], Any], Any]) -> Any:
    chain, payload = job
    return chain(payload)
