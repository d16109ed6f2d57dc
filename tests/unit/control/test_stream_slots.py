"""Endless streams of the control API hold a slot each: more than the limit answer 503, a finished one frees it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from wharf.control.api import StreamSlots
from wharf.errors import ServerBusy

pytestmark = pytest.mark.anyio


async def _lines(count: int) -> AsyncIterator[str]:
    for i in range(count):
        yield f"{i}\n"


async def test_a_slot_is_held_while_a_stream_is_read_and_freed_after() -> None:
    slots = StreamSlots(limit=1)
    first = slots.take(_lines(2))
    assert await first.__anext__() == "0\n" and slots.open == 1
    with pytest.raises(ServerBusy, match="1 watches and followed logs are open"):
        slots.take(_lines(1))
    assert [line async for line in first] == ["1\n"] and slots.open == 0
    assert [line async for line in slots.take(_lines(1))] == ["0\n"]


async def test_a_stream_closed_early_frees_its_slot() -> None:
    slots = StreamSlots(limit=1)
    stream = slots.take(_lines(5))
    await stream.__anext__()
    await stream.aclose()  # the client went
    assert slots.open == 0
