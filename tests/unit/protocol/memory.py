"""Measuring what decoding allocates: tracemalloc sees Python objects and numpy's array buffers alike."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def allocated_at_most(limit: int) -> Iterator[None]:
    """Fail if the block's allocations peak above `limit` bytes (also when it raises)."""
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak <= limit, f"allocated {peak} bytes at the peak, more than {limit}"
