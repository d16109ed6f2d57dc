"""`PrometheusProcess` with the real `prometheus` binary: started ready on a free port, started again when it dies,
a server an earlier daemon left running stopped first, and a clear error when there is no binary."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
from pathlib import Path

import httpx
import pytest

from tests.programs import program
from wharf.control.prometheus_process import PrometheusProcess
from wharf.errors import ConfigurationError

DISCOVERY = "http://127.0.0.1:9/prometheus/targets"  # nothing answers: the server runs with no targets


@pytest.fixture(scope="module", autouse=True)
def _prometheus() -> None:
    program("prometheus", "prometheus")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def test_started_ready_restarted_when_killed_and_stopped(tmp_path: Path) -> None:
    async def scenario() -> None:
        prometheus = PrometheusProcess(tmp_path)
        config = prometheus.configure(DISCOVERY, "viewer-token", 1.0)
        assert stat.S_IMODE(prometheus.token_file.stat().st_mode) == 0o600
        assert prometheus.token_file.read_text() == "viewer-token" and str(prometheus.token_file) in config.read_text()
        try:
            url = await prometheus.start("127.0.0.1", 0)
            assert _ready(url) and (tmp_path / "prometheus" / "data").is_dir()
            pid = json.loads((tmp_path / "prometheus.json").read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            for _ in range(300):  # as the daemon's resync does; its first end: started again at once, on its port
                await prometheus.supervise()
                if (again := json.loads((tmp_path / "prometheus.json").read_text())["pid"]) != pid:
                    break
                await asyncio.sleep(0.1)
            assert again != pid and not _alive(pid)
            for _ in range(300):
                if _ready(url):
                    break
                await asyncio.sleep(0.1)
            assert _ready(url)
        finally:
            await prometheus.stop(5.0)
        assert not _alive(again) and not (tmp_path / "prometheus.json").exists()

    asyncio.run(scenario())


def test_a_server_left_running_is_stopped_before_a_new_one_starts(tmp_path: Path) -> None:
    async def scenario() -> None:
        first = PrometheusProcess(tmp_path)
        first.configure(DISCOVERY, "t", 5.0)
        await first.start("127.0.0.1", 0)
        left = json.loads((tmp_path / "prometheus.json").read_text())["pid"]  # its daemon "crashed" here
        second = PrometheusProcess(tmp_path)
        try:
            await second.start("127.0.0.1", 0)  # the database's lock is free again
            assert not _alive(left)
        finally:
            await second.stop(5.0)
            await first.stop(5.0)

    asyncio.run(scenario())


def test_no_binary_is_a_clear_error(tmp_path: Path) -> None:
    prometheus = PrometheusProcess(tmp_path, binary="no-such-prometheus")
    prometheus.configure(DISCOVERY, "t", 5.0)
    with pytest.raises(ConfigurationError, match="'no-such-prometheus' is not on PATH.*WHARF_PROMETHEUS_BINARY"):
        asyncio.run(prometheus.start("127.0.0.1", 0))
