"""KServe custom predictors (subclasses of KServe's own `kserve.Model`, from PyPI) served unchanged by the real
`wharf` command, imported from its current directory: plain and async steps, the V1 dict and the V2 `InferRequest`
KServe hands them, request headers, and a predictor whose load() leaves it unready refused at start."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import START_TIMEOUT_S, RunningServer
from tests.processes import start

PREDICTORS = Path(__file__).resolve().parent / "predictors"  # on no path: found as the current directory
WHARF = Path(sys.executable).parent / "wharf"  # the installed command, whose own directory is first on sys.path
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def _command(target: str, name: str) -> list[str]:
    return [str(WHARF), "serve", f"kserve_predictors:{target}", "--name", name, "--http-port", "0", "--grpc-port", "0"]


@contextmanager
def _serving(target: str) -> Iterator[httpx.Client]:
    """`wharf serve kserve_predictors:TARGET` from the predictors' directory, with a client for it."""
    command = _command(target, target.lower())
    proc, event, lines = start(command, ENV, "serving", START_TIMEOUT_S, cwd=PREDICTORS)
    server = RunningServer(proc, event["http_port"], event.get("grpc_port"), lines)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def scaler() -> Iterator[httpx.Client]:
    with _serving("Scaler") as client:
        yield client


@pytest.fixture(scope="module")
def greeter() -> Iterator[httpx.Client]:
    with _serving("Greeter") as client:
        yield client


def test_v1_dict_through_plain_steps_with_headers(scaler: httpx.Client) -> None:
    body = {"instances": [[1, 2], [3, 4]]}
    assert scaler.post("/v1/models/scaler:predict", json=body).json() == {"predictions": [[2.0, 4.0], [6.0, 8.0]]}
    tripled = scaler.post("/v1/models/scaler:predict", json=body, headers={"x-factor": "3"})
    assert tripled.json() == {"predictions": [[3.0, 6.0], [9.0, 12.0]]}


def test_v2_infer_request_and_response(scaler: httpx.Client) -> None:
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    answer = scaler.post("/v2/models/scaler/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "model_name": "scaler",
        "id": "r1",
        "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [2, 2], "data": [2.0, 4.0, 6.0, 8.0]}],
    }
    assert scaler.get("/v2/models/scaler").json()["platform"] == "kserve"


def test_async_steps_and_row_objects(greeter: httpx.Client) -> None:
    body = {"instances": [{"name": "ada"}, {"name": "bob"}]}
    answer = greeter.post("/v1/models/greeter:predict", json=body)
    assert answer.json() == {
        "predictions": [{"greeting": "hello ada", "length": 9}, {"greeting": "hello bob", "length": 9}]
    }, answer.text
    explain = greeter.post("/v1/models/greeter:explain", json=body)
    assert explain.status_code == 501 and "does not explain" in explain.json()["error"]


def test_a_predictor_left_unready_by_load_is_refused() -> None:
    command = _command("NeverReady", "never")
    done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S, cwd=PREDICTORS, env=ENV)
    assert done.returncode == 2, done.stderr
    assert "load() left self.ready False" in done.stderr.strip().splitlines()[-1], done.stderr
