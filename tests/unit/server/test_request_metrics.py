"""Request metrics: counted in flight at once, answers published in bulk at a scrape or within a second."""

from __future__ import annotations

import asyncio

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
