"""Stores of the monitor on a temporary SQLite file, and the tables its payloads make."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wharf.monitor.payloads import Table
from wharf.monitor.settings import MonitorSettings
from wharf.monitor.store import Exchange, MonitorStore

OpenStore = Callable[..., MonitorStore]


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[OpenStore]:
    """Opens stores on one file (`settings` overridden by keywords, `clock` given); closes them all after."""
    opened: list[MonitorStore] = []

    def open_(clock: Callable[[], float] = time.time, **settings: Any) -> MonitorStore:
        settings = {"flush_interval_s": 0.01, **settings}
        store = MonitorStore(MonitorSettings(database=tmp_path / "monitor.db", **settings), clock)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def numbers(*names: str, rows: int = 1, start: float = 0.0, datatype: str = "FP64", positional: bool = False) -> Table:
    """Columns `names` of `rows` rows: column j holds start + 10*j + row."""
    columns = tuple(start + 10.0 * j + np.arange(rows) for j in range(len(names)))
    return Table(names, (datatype,) * len(names), columns, rows, positional)


def exchange(
    request_id: str, inputs: Table, outputs: Table | None, model: str = "iris", status: int = 200, at: float = 0.0
) -> Exchange:
    return Exchange(model, request_id, at or time.time(), status, "default", "iris-predictor-00001", inputs, outputs)
