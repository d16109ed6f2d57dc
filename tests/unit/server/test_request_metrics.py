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


def test_the_tally_of_answers_renders_as_prometheus_clients_counter_and_histogram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from wharf.server.metrics import _ANSWER_LABELS, _LATENCY, _LATENCY_BUCKETS, _REQUESTS

    answers = [(f"m{i % 40}", "v2-rest", 200 if i % 7 else 400, i * 0.0007) for i in range(300)]
    answers += [("m0", "grpc", 200, 0.0005), ("m1", "grpc", 200, 1e9), ("m2", "v2-rest", 503, 0.0)]
    registry = CollectorRegistry()
    requests = Counter(*_REQUESTS, _ANSWER_LABELS, registry=registry)
    latency = Histogram(*_LATENCY, _ANSWER_LABELS, buckets=_LATENCY_BUCKETS, registry=registry)
    for model, protocol, status, seconds in answers:
        requests.labels(model, protocol, str(status)).inc()
        latency.labels(model, protocol, str(status)).observe(seconds)
    metrics = ServerMetrics()
    metrics._answers.add(answers[:150])  # in two publishes, the second with label sets of both
    metrics._answers.add(answers[150:])

    def samples(text: bytes) -> tuple[set[bytes], dict[bytes, float]]:
        """The lines of the answers' metrics but sums and `_created`; the sums (added in another order: rounding)."""
        lines = [line for line in text.splitlines() if b"_created" not in line and b"wharf_request" in line]
        lines = [line for line in lines if b"in_flight" not in line]
        sums = {line.split()[0]: float(line.split()[1]) for line in lines if b"_sum{" in line}
        return {line for line in lines if b"_sum{" not in line}, sums

    expected, expected_sums = samples(generate_latest(registry))
    assert len(expected) > 40 * 17
    got, sums = samples(metrics.render())
    assert got == expected
    assert sums == pytest.approx(expected_sums)
