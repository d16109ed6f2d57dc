"""One `wharf serve` replica serving a catalogue of 30 small scikit-learn models within a budget that fits about 10:
lazy loads over V1, V2 and gRPC, evictions, reloads answering unchanged, a model too large for the budget, a
failing model, and an unload waiting for its request in flight."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as triton
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.integration.conftest import RunningServer, launch, wait_until_in_flight

MODELS = 30
BALLAST = 40_000  # float64s each model carries (320 kB): its size, far above its estimator's few kB
BUDGET = 10 * 330_000  # ten models fit, eleven do not
ROWS = load_iris().data[[0, 60, 120]]
TIMEOUT_S = 30


def _model(fitted: LogisticRegression, index: int, ballast: int = BALLAST) -> LogisticRegression:
    """The iris classifier answering 100 * `index` + the iris class: each model's answers are its own."""
    model = copy.copy(fitted)
    model.classes_ = fitted.classes_ + 100 * index
    model.ballast_ = np.ones(ballast)  # weight that `predict` ignores
    return model


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("catalogue")
    fitted = LogisticRegression(max_iter=300).fit(*load_iris(return_X_y=True))
    for i in range(MODELS):
        (root / f"m{i}").mkdir()
        joblib.dump(_model(fitted, i), root / f"m{i}" / "model.joblib")
    (root / "huge").mkdir()
    joblib.dump(_model(fitted, 99, ballast=1_000_000), root / "huge" / "model.joblib")  # 8 MB: over the budget
    (root / "broken").mkdir()
    (root / "broken" / "model.joblib").write_bytes(b"not a pickle at all")
    (root / "empty").mkdir()
    return root


@pytest.fixture(scope="module")
def server(artifacts: Path) -> Iterator[RunningServer]:
    running = launch(str(artifacts / "empty"), "--memory-budget", str(BUDGET))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: RunningServer, artifacts: Path) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as opened:
        for i in range(MODELS):
            _register(opened, f"m{i}", artifacts / f"m{i}")
        yield opened


@pytest.fixture(scope="module")
def grpc_client(server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    opened = triton.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    yield opened
    opened.close()


def _register(client: httpx.Client, name: str, uri: Path | str, **parameters: object) -> httpx.Response:
    body = {"parameters": {"storage_uri": str(uri), "model_format": "sklearn", **parameters}}
    return client.post(f"/v2/repository/models/{name}/load", json=body)


def _expected(index: int) -> list[int]:
    return [100 * index, 100 * index + 1, 100 * index + 2]


def _v1(client: httpx.Client, name: str) -> list[int]:
    answer = client.post(f"/v1/models/{name}:predict", json={"instances": ROWS.tolist()})
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def _v2(client: httpx.Client, name: str) -> list[int]:
    tensor = {"name": "input-0", "shape": list(ROWS.shape), "datatype": "FP64", "data": ROWS.ravel().tolist()}
    answer = client.post(f"/v2/models/{name}/infer", json={"inputs": [tensor]})
    assert answer.status_code == 200, answer.text
    return answer.json()["outputs"][0]["data"]


def _grpc(client: triton.InferenceServerClient, name: str) -> list[int]:
    tensor = triton.InferInput("input-0", list(ROWS.shape), "FP64")
    tensor.set_data_from_numpy(ROWS)
    result = client.infer(name, [tensor], client_timeout=TIMEOUT_S)
    return result.as_numpy(result.get_response().outputs[0].name).tolist()


def _index(client: httpx.Client) -> dict[str, dict]:
    answer = client.post("/v2/repository/index")
    assert answer.status_code == 200, answer.text
    return {row["name"]: row for row in answer.json()}


def _memory(client: httpx.Client) -> dict:
    answer = client.get("/v2/repository/memory")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_thirty_models_answer_over_every_protocol_within_a_budget_for_ten(
    client: httpx.Client, grpc_client: triton.InferenceServerClient
) -> None:
    index = _index(client)
    assert all(index[f"m{i}"]["state"] == "REGISTERED" for i in range(MODELS))
    assert client.get("/v2/health/ready").status_code == 200  # registered models do not hold readiness back
    for i in range(MODELS):
        name = f"m{i}"
        assert _v1(client, name) == _expected(i)
        assert _v2(client, name) == _expected(i)
        assert _grpc(grpc_client, name) == _expected(i)
    memory = _memory(client)
    assert memory["budget_bytes"] == BUDGET and memory["used_bytes"] <= BUDGET
    assert 8 <= memory["models_loaded"] <= 10 and memory["evictions"] >= MODELS - 10
    index = _index(client)
    evicted = [row for row in index.values() if row["state"] == "REGISTERED"]
    assert evicted and all("evicted (least recently used)" in row["reason"] for row in evicted)
    loaded = [row for row in index.values() if row["state"] == "READY"]
    assert all(8 * BALLAST <= row["resident_bytes"] < 2 * 8 * BALLAST for row in loaded), loaded
    for i in range(MODELS):  # again, every model reloaded: the same answers
        assert _v2(client, f"m{i}") == _expected(i)
    assert _index(client)["m0"]["loads"] >= 2
    lines = client.get("/metrics").text.splitlines()
    samples = {name: float(value) for name, _, value in (line.partition(" ") for line in lines if line[:1] != "#")}
    assert samples["wharf_model_memory_budget_bytes"] == BUDGET and samples["wharf_model_evictions_total"] >= 20
    assert samples["wharf_model_load_duration_seconds_count"] == samples["wharf_model_loads_total"] >= 50
    assert samples["wharf_model_hits_total"] + samples["wharf_model_misses_total"] >= 3 * MODELS
    assert samples['wharf_queue_wait_seconds_count{model="(shared)"}'] >= 3 * MODELS  # one set of worker threads


def test_a_model_larger_than_the_budget_is_refused_with_its_reason(client: httpx.Client, artifacts: Path) -> None:
    declared = _register(client, "declared-huge", artifacts / "huge", memory="64Mi")
    assert declared.status_code == 400 and "parameters.memory" in declared.json()["error"]
    assert _register(client, "huge", artifacts / "huge").status_code == 200
    answer = client.post("/v1/models/huge:predict", json={"instances": ROWS.tolist()})
    assert answer.status_code == 503 and "more than the whole memory budget" in answer.json()["error"]
    row = _index(client)["huge"]
    assert row["state"] == "FAILED" and "more than the whole memory budget" in row["reason"]
    assert _v1(client, "m3") == _expected(3)


def test_a_failing_model_is_reported_while_the_others_serve(client: httpx.Client, artifacts: Path) -> None:
    assert _register(client, "broken", artifacts / "broken").status_code == 200
    answer = client.post("/v1/models/broken:predict", json={"instances": ROWS.tolist()})
    assert answer.status_code == 503 and "failed to load" in answer.json()["error"]
    again = client.post("/v1/models/broken:predict", json={"instances": ROWS.tolist()})
    assert again.status_code == 503 and "tried again in" in again.json()["error"]  # backing off, not reloading
    row = _index(client)["broken"]
    assert row["state"] == "FAILED" and row["reason"] and row["loads"] == 0
    assert _v2(client, "m4") == _expected(4)
    eager = _register(client, "broken-now", artifacts / "broken", lazy=False)
    assert eager.status_code == 500 and eager.json()["error"]


def test_an_unload_waits_for_the_request_in_flight(client: httpx.Client, server: RunningServer) -> None:
    loaded = client.post(
        "/v2/repository/models/slow/load", json={"parameters": {"storage_uri": "wharf_test_models:Slow", "lazy": False}}
    )
    assert loaded.status_code == 200, loaded.text
    body = {"inputs": [{"name": "seconds", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    answered: list[tuple[httpx.Response, float]] = []

    def infer() -> None:
        answer = httpx.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=TIMEOUT_S)
        answered.append((answer, time.monotonic()))

    worker = threading.Thread(target=infer)
    worker.start()
    wait_until_in_flight(server, "slow")
    assert client.post("/v2/repository/models/slow/unload").status_code == 200
    unloaded_at = time.monotonic()
    worker.join(TIMEOUT_S)
    ((answer, answered_at),) = answered
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [1.0]
    assert answered_at <= unloaded_at + 0.05  # the unload answered only once the request had been answered
    assert "slow" not in _index(client)
    assert client.post("/v2/models/slow/infer", json=body).status_code == 404
