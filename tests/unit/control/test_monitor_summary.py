"""The daemon's reading of its monitor's summary: a monitor that does not answer says nothing (None), so the
services keep what was last known instead of losing their `status.monitoring` while it restarts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from wharf.control.monitor_process import MonitorProcess

pytestmark = pytest.mark.anyio


async def test_a_monitor_that_does_not_answer_gives_no_summary(tmp_path: Path) -> None:
    monitor = MonitorProcess(tmp_path, "http://127.0.0.1:1", "example.com")
    assert await monitor.summary() is None  # never started
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monitor.url = f"http://127.0.0.1:{port}"  # nothing listens there any more
    assert await monitor.summary() is None
    await monitor.stop()
