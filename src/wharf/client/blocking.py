"""Blocking faces of async clients: one implementation (the async client), called from code without an event loop.

A face runs its client on an event loop in a thread of its own (`LoopThread`), so it also works where the calling
thread already runs a loop, as a Jupyter notebook's does (where `asyncio.run` refuses). Each method of the face is
its client's coroutine method made blocking with `blocking` (an async iterator's with `blocking_iter`): the same
signature, docstring, answers and errors. A call costs a hand-over to the loop's thread and back (tens of
microseconds), nothing per byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
_STOP_TIMEOUT_S = 10.0


class Closeable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=Closeable)


class LoopThread:
    """An event loop running in a daemon thread; `run` a coroutine on it and wait for its result."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._loop.is_closed()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """The result of `work` (its exception raised here); an interrupt (Ctrl-C) while waiting cancels it."""
        if self.closed:
            work.close()
            raise RuntimeError("this client is closed")
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """`items` one by one; a reader that stops early (break, an error of its own, closing this iterator) closes
        them. Items that end with an error, or are cancelled by an interrupt, have closed themselves."""
        ended = False
        try:
            while True:
                try:
                    item = self.run(_next(items))
                except BaseException:
                    ended = True
                    raise
                if item is _END:
                    ended = True
                    return
                yield item  # type: ignore[misc]
        finally:
            close = getattr(items, "aclose", None)
            if not ended and close is not None and not self.closed:
                self.run(close())

    def stop(self) -> None:
        """Stop the loop and its thread (again: nothing more)."""
        if self.closed:
            return
        # Close the async generators still open (a watch left early: its stream's lines) while the loop runs.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._loop.shutdown_asyncgens(), self._loop).result(_STOP_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_STOP_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()


_END: Any = object()


async def _next(items: AsyncIterator[T]) -> T:
    """The next item, or `_END` after the last."""
    return await anext(items, _END)


class BlockingFace(Generic[C]):
    """The blocking face of the async client `C`, whose methods subclasses expose with `blocking`. One face serves
    one thread at a time; use it as a context manager or `close` it."""

    def __init__(self, client: C) -> None:
        self._async = client
        self._loop = LoopThread(f"wharf-{type(client).__name__}")

    def close(self) -> None:
        """Close the client's connections, then its event loop (again: nothing more)."""
        try:
            if not self._loop.closed:
                self._loop.run(self._async.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def blocking(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[BlockingFace[Any], P], T]:
    """An async client's coroutine method as a method of its blocking face."""

    @functools.wraps(method)
    def call(face: BlockingFace[Any], *args: P.args, **kwargs: P.kwargs) -> T:
        return face._loop.run(method(face._async, *args, **kwargs))

    return call


def blocking_iter(
    method: Callable[Concatenate[Any, P], AsyncIterator[T]],
) -> Callable[Concatenate[BlockingFace[Any], P], Iterator[T]]:
    """An async client's method that returns an async iterator as a method of its face returning an iterator."""

    @functools.wraps(method)
    def call(face: BlockingFace[Any], *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return face._loop.iterate(method(face._async, *args, **kwargs))

    return call
