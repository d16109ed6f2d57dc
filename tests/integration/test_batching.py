"""Adaptive batching through a real server: concurrent requests share predict calls, and each gets its own rows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.integration.conftest import RunningServer


def _body(values: list[float]) -> dict:
    return {
        "inputs": [
            {"name": "x", "shape": [len(values), 2], "datatype": "FP64", "data": [v for v in values for _ in (0, 1)]}
        ]
    }


def _fire(server: RunningServer, bodies: list[dict]) -> list[httpx.Response]:
    with httpx.Client(base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=len(bodies))) as client:
        with ThreadPoolExecutor(len(bodies)) as pool:
            return list(pool.map(lambda b: client.post("/v2/models/probe/infer", json=b), bodies))


def test_concurrent_requests_are_merged_and_split_back(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:BatchProbe", "--name", "probe", "--max-batch-size", "64")
    bodies = [_body([i, i + 0.5]) for i in range(24)]
    answers = _fire(server, bodies)
    largest = 0
    for i, answer in enumerate(answers):
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
        assert outputs["sum"] == [2 * i, 2 * i + 1]  # this request's own rows, in order
        largest = max(largest, outputs["rows_in_call"][0])
    assert largest > 2  # some call served several requests
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    calls = next(line for line in metrics.splitlines() if line.startswith('wharf_batch_size_count{model="probe"}'))
    assert float(calls.split()[-1]) < len(bodies)


def test_a_failing_request_does_not_fail_its_batch_mates(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:BatchProbe", "--name", "probe", "--max-batch-size", "64")
    bodies = [_body([-1.0] if i == 5 else [float(i)]) for i in range(16)]
    answers = _fire(server, bodies)
    for i, answer in enumerate(answers):
        if i == 5:
            assert answer.status_code == 400 and "negative numbers" in answer.json()["error"]
        else:
            assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [2.0 * i]


def test_batching_off_keeps_one_request_per_call(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:BatchProbe", "--name", "probe")
    answers = _fire(server, [_body([float(i)]) for i in range(8)])
    assert all(a.json()["outputs"][1]["data"] == [1] for a in answers)


def test_model_settings_file_turns_batching_on_for_one_model(serve, iris_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in ("batched", "plain"):
        (tmp_path / name).mkdir()
        shutil.copy(iris_model, tmp_path / name / "model.joblib")
    (tmp_path / "batched" / "model-settings.json").write_text('{"max_batch_size": 64, "max_batch_latency_ms": 5}')
    server = serve(str(tmp_path))
    row = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    with httpx.Client(base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=32)) as client:
        with ThreadPoolExecutor(32) as pool:
            for model in ("batched", "plain"):
                answers = list(pool.map(lambda _: client.post(f"/v2/models/{model}/infer", json=row), range(200)))
                assert all(a.status_code == 200 and a.json()["outputs"][0]["data"] == [0] for a in answers)
        metrics = client.get("/metrics").text
    counts = {
        model: float(
            next(
                line.split()[-1]
                for line in metrics.splitlines()
                if line.startswith(f'wharf_batch_size_count{{model="{model}"}}')
            )
        )
        for model in ("batched", "plain")
    }
    assert counts["plain"] == 200 and counts["batched"] < 200


def test_a_bad_model_settings_file_is_refused_at_start(iris_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(iris_model, tmp_path / "model.joblib")
    (tmp_path / "model-settings.json").write_text('{"max_batch_size": 0, "colour": "red"}')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wharf.cli",
            "serve",
            str(tmp_path),
            "--name",
            "m",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "max_batch_size: Input should be greater than or equal to 1" in proc.stderr and "colour" in proc.stderr
