"""Per-model figures of a real `wharf serve` at its /metrics: queue wait, rows per call, and the time of each step."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import RunningServer, launch
from tests.integration.test_serving import _free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

Serve = Callable[..., RunningServer]


def samples(server: RunningServer, model: str) -> dict[tuple[str, str], float]:
    """(sample name, step label) -> value of `model`'s samples in the server's /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        (s.name, s.labels.get("step", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("model") == model and "le" not in s.labels
    }


def rows(values: list[float]) -> dict:
    return {"inputs": [{"name": "x", "shape": [len(values), 2], "datatype": "FP64", "data": values * 2}]}


def test_a_batched_model_reports_each_call_its_rows_and_each_request_wait(serve: Serve) -> None:
    server = serve("wharf_test_models:BatchProbe", "--name", "probe", "--max-batch-size", "64")
    with httpx.Client(base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=24)) as client:
        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda i: client.post("/v2/models/probe/infer", json=rows([i, i])), range(24)))
    assert all(a.status_code == 200 for a in answers)
    got = samples(server, "probe")
    calls = got[("wharf_batch_size_count", "")]
    assert calls < 24  # some calls served several requests
    assert got[("wharf_batch_size_sum", "")] == 48  # two rows each
    assert got[("wharf_queue_wait_seconds_count", "")] == 24  # one wait per request
    assert got[("wharf_model_step_seconds_count", "predict")] == calls  # one predict per call, batch or not
    assert got[("wharf_model_step_seconds_sum", "predict")] >= 0.02 * calls  # BatchProbe sleeps 20 ms a call
    assert ("wharf_model_step_seconds_count", "preprocess") not in got  # a step the model does not have


def test_each_step_is_timed_when_one_is_async(serve: Serve) -> None:
    server = serve("wharf_test_models:AsyncDoubler", "--name", "doubler")
    body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]}]}
    for _ in range(5):
        assert httpx.post(f"{server.url}/v2/models/doubler/infer", json=body, timeout=10).status_code == 200
    got = samples(server, "doubler")
    for step in ("preprocess", "predict", "postprocess"):
        assert got[("wharf_model_step_seconds_count", step)] == 5, step
        assert got[("wharf_model_step_seconds_sum", step)] > 0


def test_every_worker_process_reports_its_figures(iris_model: Path) -> None:
    port = _free_port()
    server = launch(
        str(iris_model), "--name", "iris", "--workers", "2", "--http-port", str(port), "--grpc-port", str(_free_port())
    )
    try:
        deadline = time.monotonic() + 30
        while sum('"event":"serving"' in line for line in server.log) < 2:
            assert time.monotonic() < deadline, "the second worker never said it was serving"
            time.sleep(0.1)
        row = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
        for _ in range(20):  # a new connection each time, spread over the workers by the kernel
            assert httpx.post(f"{server.url}/v2/models/iris/infer", json=row, timeout=10).status_code == 200
        deadline = time.monotonic() + 10  # the worker not scraped publishes within about a second
        while (counted := samples(server, "iris").get(("wharf_model_step_seconds_count", "predict"))) != 20:
            assert time.monotonic() < deadline, f"{counted} of 20 predict calls reported"
            time.sleep(0.2)
        assert samples(server, "iris")[("wharf_queue_wait_seconds_count", "")] == 20
    finally:
        assert server.stop() == 0
