"""Runs a model's blocking code in dedicated worker threads, so that the event loop never blocks.

Requests queue in arrival order (bounded: a full queue is refused at once with `ServerBusy`); each worker thread
takes the next request, runs it and hands the result back to the event loop. Compared with a general thread pool
this avoids a second future per request and keeps one model's threads from competing with other models'.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from wharf.errors import ServerBusy
from wharf.model.base import Model, overrides

_STOP = object()


class ThreadRunner:
    def __init__(self, fn: Callable[[Any], Any], threads: int, max_queue: int, name: str) -> None:
        self._fn = fn
        self._max_queue = max_queue
        self._name = name
        self._loop = asyncio.get_running_loop()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting = 0  # submitted and not yet answered; touched on the event loop only
        self._threads = [
            threading.Thread(target=self._work, name=f"wharf-{name}-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def depth(self) -> int:
        """Requests submitted and not yet answered."""
        return self._waiting

    def submit(self, payload: Any) -> asyncio.Future[Any]:
        if self._waiting >= self._max_queue:
            raise ServerBusy(f"model '{self._name}' has {self._waiting} requests queued; retry later")
        future = self._loop.create_future()
        self._waiting += 1
        self._queue.put((payload, future))
        return future

    def close(self) -> None:
        """Stop the threads once the requests already queued are done."""
        for _ in self._threads:
            self._queue.put(_STOP)

    def _work(self) -> None:
        fn, loop, take = self._fn, self._loop, self._queue.get
        while (item := take()) is not _STOP:
            payload, future = item
            if future.cancelled():  # its caller gave up (deadline) while it was queued
                loop.call_soon_threadsafe(self._answer, future, None, None)
                continue
            try:
                loop.call_soon_threadsafe(self._answer, future, fn(payload), None)
            except BaseException as error:  # handed to the caller, who maps it
                loop.call_soon_threadsafe(self._answer, future, None, error)

    def _answer(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        self._waiting -= 1
        if future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _apply(job: tuple[Callable[[Any], Any], Any]) -> Any:
    step, payload = job
    return step(payload)


class ModelPipeline:
    """A loaded model's steps (preprocess, predict, postprocess) bound to its worker threads.

    Plain steps run in the model's threads, all of them in a single hop when none is async; async steps run on
    the event loop.
    """

    def __init__(self, model: Model, threads: int, max_queue: int) -> None:
        self.model = model
        steps = [getattr(model, m) for m in ("preprocess", "predict", "postprocess") if m == "predict" or overrides(model, m)]
        self._steps = [(step, inspect.iscoroutinefunction(step)) for step in steps]
        self._threads = ThreadRunner(_apply, threads, max_queue, model.name)
        if not any(is_async for _, is_async in self._steps):
            self._chain = steps
            self.run: Callable[[Any], Awaitable[Any]] = self._run_chain
        else:
            self.run = self._run_steps

    def _call_chain(self, payload: Any) -> Any:
        for step in self._chain:
            payload = step(payload)
        return payload

    def _run_chain(self, payload: Any) -> Awaitable[Any]:
        return self._threads.submit((self._call_chain, payload))

    async def _run_steps(self, payload: Any) -> Any:
        for step, is_async in self._steps:
            payload = await (step(payload) if is_async else self._threads.submit((step, payload)))
        return payload

    def close(self) -> None:
        self._threads.close()
