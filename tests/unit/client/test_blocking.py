"""Blocking faces of async clients: the same calls and errors, usable where a loop already runs (a notebook), and
an iterator left early closes what it reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from wharf.client.blocking import BlockingFace, blocking, blocking_iter
from wharf.errors import NotFound


class Counter:
    """An async client: counts, fails on request, and records whether its streams and itself were closed."""

    def __init__(self) -> None:
        self.streams_closed = 0
        self.closed = False

    async def add(self, a: int, b: int = 1) -> int:
        """a + b."""
        await asyncio.sleep(0)
        return a + b

    async def fail(self) -> None:
        raise NotFound("nothing here")

    async def count(self, up_to: int) -> AsyncIterator[int]:
        try:
            for n in range(up_to):
                await asyncio.sleep(0)
                yield n
        finally:
            self.streams_closed += 1

    async def close(self) -> None:
        self.closed = True


class BlockingCounter(BlockingFace[Counter]):
    add = blocking(Counter.add)
    fail = blocking(Counter.fail)
    count = blocking_iter(Counter.count)


def test_calls_answer_and_raise_as_the_async_client_does() -> None:
    with BlockingCounter(Counter()) as counter:
        assert counter.add(2, b=3) == 5
        assert counter.add.__doc__ == "a + b."
        with pytest.raises(NotFound, match="nothing here"):
            counter.fail()
        assert list(counter.count(3)) == [0, 1, 2]
    assert counter._async.closed
    counter.close()  # again: nothing more
    with pytest.raises(RuntimeError, match="closed"):
        counter.add(1)


def test_leaving_an_iterator_early_closes_the_async_one() -> None:
    with BlockingCounter(Counter()) as counter:
        for n in counter.count(100):
            if n == 2:
                break
        assert counter._async.streams_closed == 1
        stream = counter.count(100)
        assert next(stream) == 0
        stream.close()
        assert counter._async.streams_closed == 2


@pytest.mark.anyio
async def test_a_face_works_where_an_event_loop_already_runs() -> None:
    """As in a Jupyter notebook, whose cells run inside the kernel's event loop."""
    with BlockingCounter(Counter()) as counter:
        assert counter.add(1) == 2
        assert list(counter.count(2)) == [0, 1]
