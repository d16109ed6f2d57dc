"""Serving behaviour of `wharf serve`: custom models, datatypes, multi-model repositories, concurrency,
timeouts, draining on SIGTERM, failures and several worker processes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from tests.integration.conftest import ROOT, launch, post_without_body, wait_until_in_flight
from tests.unit.protocol.test_tensors import NUMERIC
from wharf.protocol.tensors import DTYPES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_datatype_round_trips_through_json_and_binary(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Echo", "--name", "echo")
    inputs = [{"name": dt.lower(), "shape": [2, 2], "datatype": dt, "data": values} for dt, values in NUMERIC.items()]
    inputs.append({"name": "text", "shape": [2], "datatype": "BYTES", "data": ["héllo", ""]})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        doc = client.post("/v2/models/echo/infer", json={"inputs": inputs, "parameters": {"tag": "x"}}).json()
        assert doc["parameters"] == {"tag": "x"}
        assert [(o["name"], o["datatype"], o["shape"], o["data"]) for o in doc["outputs"]] == [
            (i["name"], i["datatype"], i["shape"], i["data"]) for i in inputs
        ]
        binary = client.post(
            "/v2/models/echo/infer", json={"inputs": inputs, "parameters": {"binary_data_output": True}}
        )
        length = int(binary.headers["inference-header-content-length"])
        offset = length
        for out, sent in zip(orjson.loads(binary.content[:length])["outputs"], inputs):
            size = out["parameters"]["binary_data_size"]
            raw = binary.content[offset : offset + size]
            offset += size
            if sent["datatype"] == "BYTES":
                assert raw == b"\x06\x00\x00\x00h\xc3\xa9llo\x00\x00\x00\x00"
            else:
                assert np.frombuffer(raw, dtype=DTYPES[sent["datatype"]]).tolist() == sent["data"]
        assert offset == len(binary.content)


def test_async_model_with_pre_and_post_processing(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:AsyncDoubler", "--name", "doubler")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"inputs": [{"name": "x", "shape": [3], "datatype": "INT32", "data": [1, 2, 3]}]}
        out = client.post("/v2/models/doubler/infer", json=body).json()["outputs"]
        assert out == [{"name": "y", "datatype": "FP64", "shape": [3], "data": [3.0, 5.0, 7.0]}]
        body["inputs"][0]["name"] = "z"
        answer = client.post("/v2/models/doubler/infer", json=body)
        assert answer.status_code == 400 and "unexpected input(s) ['z']" in answer.json()["error"]
        assert client.get("/v2/models/doubler").json()["inputs"] == [{"name": "x", "datatype": "FP64", "shape": [-1]}]


def test_a_slow_model_does_not_block_the_server_and_times_out(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Slow", "--name", "slow", env={"WHARF_REQUEST_TIMEOUT_S": "1"})
    body = {"inputs": [{"name": "seconds", "shape": [1], "datatype": "FP32", "data": [3]}]}
    results: list[httpx.Response] = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        worker = threading.Thread(target=lambda: results.append(client.post("/v2/models/slow/infer", json=body)))
        worker.start()
        wait_until_in_flight(server, "slow")
        started = time.monotonic()
        assert httpx.get(server.url + "/v2/health/live", timeout=5).status_code == 200
        assert time.monotonic() - started < 0.5
        worker.join(10)
    assert results[0].status_code == 504 and "did not answer within 1.0 s" in results[0].json()["error"]


def test_v1_explain_answers_the_models_explanation_within_the_deadline(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Weighted", "--name", "weighted")
    rows = {"instances": [[1, 2, 3], [0, 0, 1]]}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/v1/models/weighted:predict", json=rows).json() == {"predictions": [4.5, 2.0]}
        explained = client.post("/v1/models/weighted:explain", json=rows)
        assert explained.status_code == 200 and explained.json() == {
            "explanations": [
                {"contributions": [0.5, -2.0, 6.0], "score": 4.5},
                {"contributions": [0, 0, 2], "score": 2},
            ]
        }
        wrong = client.post("/v1/models/weighted:explain", json={"instances": [[1, 2]]})
        assert wrong.status_code == 400 and "rows must have 3 features, got shape [1, 2]" in wrong.json()["error"]
        assert client.get("/v1/models/weighted:explain").status_code == 405
        assert client.post("/v1/models/nope:explain", json=rows).status_code == 404
        metrics = client.get("/metrics").text
        assert 'wharf_requests_total{model="weighted",protocol="v1-rest-explain",status="200"} 1.0' in metrics
    slow = serve(
        "wharf_test_models:Weighted",
        "--name",
        "weighted",
        env={
            "WHARF_REQUEST_TIMEOUT_S": "1",
            "EXPLAIN_SLEEP_S": "3",
            "WHARF_PREDICT_THREADS": "1",
            "WHARF_MAX_QUEUED_EXPLANATIONS": "0",
        },
    )
    with httpx.Client(base_url=slow.url, timeout=10) as client:
        late = client.post("/v1/models/weighted:explain", json=rows)
        assert late.status_code == 504 and "did not explain within 1.0 s" in late.json()["error"]
        busy = client.post("/v1/models/weighted:explain", json=rows)  # the first still holds the one thread
        assert busy.status_code == 503 and "all 1 explanation threads are busy" in busy.json()["error"]
        assert client.post("/v1/models/weighted:predict", json=rows).json() == {"predictions": [4.5, 2.0]}


def test_explanations_wait_for_a_thread_while_there_is_room_to_wait(serve) -> None:  # type: ignore[no-untyped-def]
    env = {"EXPLAIN_SLEEP_S": "1", "WHARF_PREDICT_THREADS": "1", "WHARF_MAX_QUEUED_EXPLANATIONS": "1"}
    server = serve("wharf_test_models:Weighted", "--name", "weighted", env=env)
    rows = {"instances": [[1, 2, 3]]}

    def explain(_: int) -> int:
        return httpx.post(f"{server.url}/v1/models/weighted:explain", json=rows, timeout=10).status_code

    with ThreadPoolExecutor(3) as pool:
        codes = sorted(pool.map(explain, range(3)))
    assert codes == [200, 200, 503]  # one runs, one waits for its thread, the third finds no room


def test_a_body_that_never_comes_is_answered_within_the_body_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Echo", "--name", "echo", env={"WHARF_BODY_TIMEOUT_S": "0.5"})
    head, body, seconds = post_without_body(server.http_port, "127.0.0.1", "/v2/models/echo/infer")
    assert seconds < 3 and head.startswith(b"HTTP/1.1 400 ")
    assert orjson.loads(body) == {"error": "request body not received within 0.5 s"}
    assert httpx.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200


def test_a_failing_model_answers_500_and_the_server_keeps_serving(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Broken", "--name", "broken")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
        for _ in range(2):
            answer = client.post("/v2/models/broken/infer", json=body)
            assert answer.status_code == 500 and "RuntimeError: boom" in answer.json()["error"]
        assert client.get("/v2/health/ready").status_code == 200


def test_a_model_that_fails_to_load_stops_the_server_with_a_clear_message() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wharf.cli", "serve", "wharf_test_models:FailsToLoad", "--http-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "tests/integration/models"), "PATH": ""},
    )
    assert proc.returncode == 2
    assert "OSError: weights missing" in proc.stderr


def test_unknown_artifact_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    proc = subprocess.run(
        [sys.executable, "-m", "wharf.cli", "serve", str(tmp_path), "--name", "m", "--http-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "no model artifact found" in proc.stderr


def test_sigterm_drains_in_flight_requests(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Slow", "--name", "slow")
    body = {"inputs": [{"name": "seconds", "shape": [1], "datatype": "FP32", "data": [1.5]}]}
    results: list[httpx.Response] = []
    worker = threading.Thread(
        target=lambda: results.append(httpx.post(server.url + "/v2/models/slow/infer", json=body, timeout=10))
    )
    worker.start()
    wait_until_in_flight(server, "slow")
    server.proc.send_signal(signal.SIGTERM)
    worker.join(10)
    assert results and results[0].status_code == 200
    assert results[0].json()["outputs"][0]["data"] == [1.5]
    assert server.proc.wait(10) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/v2/health/live", timeout=2)


def test_multi_model_repository_with_versions_load_and_unload(serve, iris_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / "models"
    for place in ("first", "second/1", "second/2"):
        (repo / place).mkdir(parents=True)
        shutil.copy(iris_model, repo / place / "model.joblib")
    server = serve(str(repo))
    row = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        index = client.post("/v2/repository/index").json()
        assert sorted((r["name"], r.get("version"), r["state"]) for r in index) == [
            ("first", None, "READY"),
            ("second", "1", "READY"),
            ("second", "2", "READY"),
        ]
        assert client.get("/v2/models/second").json()["versions"] == ["1", "2"]
        answer = client.post("/v2/models/second/versions/1/infer", json=row).json()
        assert answer["model_version"] == "1" and answer["outputs"][0]["data"] == [0]
        assert client.post("/v2/models/second/infer", json=row).json()["model_version"] == "2"

        assert client.post("/v2/repository/models/first/unload").status_code == 200
        assert client.get("/v2/models/first/ready").status_code == 503
        answer = client.post("/v2/models/first/infer", json=row)
        assert answer.status_code == 503 and "not ready" in answer.json()["error"]
        assert client.post("/v2/repository/index", json={"ready": True}).json()[0]["name"] == "second"
        assert client.post("/v2/repository/models/first/load").status_code == 200
        assert client.post("/v2/models/first/infer", json=row).status_code == 200

        (repo / "third").mkdir()
        shutil.copy(iris_model, repo / "third" / "model.joblib")
        assert client.post("/v2/models/third/infer", json=row).status_code == 404
        assert client.post("/v2/repository/models/third/load").status_code == 200
        assert client.post("/v2/models/third/infer", json=row).status_code == 200
        assert client.post("/v2/repository/models/fourth/load").status_code == 404


def test_an_empty_repository_serves_and_says_it_has_no_model(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve(str(tmp_path))
    assert any('"no model to serve"' in line for line in server.log)
    assert httpx.post(f"{server.url}/v2/repository/index", timeout=5).json() == []


def test_several_workers_share_the_port_and_metrics(iris_model) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    server = launch(
        str(iris_model), "--name", "iris", "--workers", "2", "--http-port", str(port), "--grpc-port", str(_free_port())
    )
    try:
        row = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
        deadline = time.monotonic() + 30
        while sum(1 for line in server.log if '"event":"serving"' in line) < 2:  # the second may still be loading
            if time.monotonic() > deadline:
                pytest.fail("the second worker never said it was serving:\n" + "".join(server.log))
            time.sleep(0.1)
        for _ in range(20):  # a new connection each time, spread over the workers by the kernel
            assert httpx.post(server.url + "/v2/models/iris/infer", json=row, timeout=10).status_code == 200
        text = httpx.get(server.url + "/metrics", timeout=10).text
        assert 'wharf_requests_total{model="iris",protocol="v2-rest",status="200"} 20.0' in text
    finally:
        assert server.stop() == 0


def test_a_port_in_use_is_a_clear_error(iris_model) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "wharf.cli", "serve", str(iris_model), "--http-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in proc.stderr
