"""Request metrics: counted in flight at once, answers published in bulk at a scrape or within a second (at once
with several processes)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wharf.errors import InvalidInput
from wharf.server.metrics import ServerMetrics

pytestmark = pytest.mark.anyio


def _value(metrics: ServerMetrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def _answer(result: object = "ok") -> object:
    if isinstance(result, Exception):
        raise result
    return result


async def test_a_scrape_shows_every_answer_and_the_requests_in_flight() -> None:
    metrics = ServerMetrics()
    release = asyncio.Event()
    waiting = asyncio.ensure_future(metrics.measured("m", "v2-rest", release.wait()))
    for _ in range(3):
        await metrics.measured("m", "v2-rest", _answer())
    with pytest.raises(InvalidInput):
        await metrics.measured("m", "v2-rest", _answer(InvalidInput("bad")))
    await asyncio.sleep(0)
    assert metrics.in_flight_of("m") == 1
    text = metrics.render().decode()
    assert 'wharf_requests_total{model="m",protocol="v2-rest",status="200"} 3.0' in text
    assert 'wharf_requests_total{model="m",protocol="v2-rest",status="400"} 1.0' in text
    assert 'wharf_request_duration_seconds_count{model="m",protocol="v2-rest",status="200"} 3.0' in text
    assert 'wharf_requests_in_flight{model="m"} 1.0' in text
    release.set()
    await waiting
    assert metrics.in_flight_of("m") == 0
    assert 'wharf_requests_in_flight{model="m"} 0.0' in metrics.render().decode()


async def test_answers_reach_the_metrics_within_a_second_without_a_scrape() -> None:
    metrics = ServerMetrics()
    await metrics.measured("m", "grpc", _answer())
    labels = {"model": "m", "protocol": "grpc", "status": "200"}
    assert _value(metrics, "wharf_requests_total", labels) is None  # noted, not yet published
    async with asyncio.timeout(10):
        while _value(metrics, "wharf_requests_total", labels) != 1.0:
            await asyncio.sleep(0.05)
    assert _value(metrics, "wharf_request_duration_seconds_count", labels) == 1.0


def test_with_several_processes_each_answer_is_written_once_at_once(tmp_path: Path) -> None:
    # prometheus-client chooses its file-backed values at import, so this runs in a fresh interpreter.
    code = """
import asyncio
from wharf.server.metrics import ServerMetrics

async def main() -> None:
    metrics = ServerMetrics()
    for status in (200, 200, 200, 400):
        metrics.started("m")
        metrics.finished("m", "v2-rest", status, 0.003)
    metrics.started("m")
    print(metrics.render().decode())

asyncio.run(main())
"""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert 'wharf_requests_total{model="m",protocol="v2-rest",status="200"} 3.0' in text
    assert 'wharf_requests_total{model="m",protocol="v2-rest",status="400"} 1.0' in text
    assert 'wharf_request_duration_seconds_bucket{le="0.005",model="m",protocol="v2-rest",status="200"} 3.0' in text
    assert 'wharf_requests_in_flight{model="m"} 1.0' in text
