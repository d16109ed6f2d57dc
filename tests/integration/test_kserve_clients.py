"""KServe's own REST client (`kserve.InferenceRESTClient`, from PyPI) against a real `wharf serve` of a KServe
custom predictor: V1 liveness at `/`, the V1 model list, model readiness and inference over V1 and V2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import START_TIMEOUT_S, RunningServer
from tests.integration.test_kserve_predictor import ENV, PREDICTORS, WHARF
from tests.processes import start

# KServe's client runs in an interpreter of its own: its generated protobuf modules and tritonclient's cannot share
# a process (both register `inference.*` in protobuf's default pool). It prints what it saw as JSON.
KSERVE_CLIENT = """
import asyncio, json, sys
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

async def main(base_url, headers):
    seen = {}
    async with InferenceRESTClient(RESTConfig(protocol="v1", timeout=10, retries=0)) as client:
        seen["v1_live"] = await client.is_server_live(base_url, headers=headers)
        seen["v1_model_ready"] = await client.is_model_ready(base_url, "scaler", headers=headers)
        answer = await client.infer(base_url, {"instances": [[1, 2]]}, model_name="scaler", headers=headers)
        seen["v1"] = answer["predictions"]
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=10, retries=0)) as client:
        seen["v2_live"] = await client.is_server_live(base_url, headers=headers)
        seen["v2_ready"] = await client.is_server_ready(base_url, headers=headers)
        request = InferRequest("scaler", [InferInput("x", [1, 2], "FP32", [1.0, 2.0])])
        answer = await client.infer(base_url, request, model_name="scaler", headers=headers)
        seen["v2"] = answer.outputs[0].data
    print(json.dumps(seen))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""
SEEN = {
    "v1_live": True,
    "v1_model_ready": True,
    "v1": [[2.0, 4.0]],
    "v2_live": True,
    "v2_ready": True,
    "v2": [2.0, 4.0],
}


def kserve_client_sees(base_url: str, headers: dict[str, str] | None = None) -> dict:
    """What KServe's REST client, in a process of its own, sees of the `scaler` model at `base_url`."""
    command = [sys.executable, "-c", KSERVE_CLIENT, base_url, json.dumps(headers or {})]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def scaler() -> Iterator[RunningServer]:
    """`wharf serve kserve_predictors:Scaler` (a `kserve.Model` subclass) from the predictors' directory."""
    command = [str(WHARF), "serve", "kserve_predictors:Scaler", "--name", "scaler", "--http-port", "0"]
    proc, event, lines = start([*command, "--grpc-port", "0"], ENV, "serving", START_TIMEOUT_S, cwd=PREDICTORS)
    server = RunningServer(proc, event["http_port"], event.get("grpc_port"), lines)
    yield server
    server.stop()


def test_kserve_rest_client_over_v1_and_v2(scaler: RunningServer) -> None:
    assert kserve_client_sees(scaler.url) == SEEN


def test_v1_routes_answer_as_kserve_does(scaler: RunningServer) -> None:
    with httpx.Client(base_url=scaler.url, timeout=10) as client:
        root = client.get("/")
        assert (root.status_code, root.json()) == (200, {"status": "alive"})
        assert client.get("/v1/models").json() == {"models": ["scaler"]}
        refused = client.post("/")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET", refused.text
        assert client.post("/v1/models").status_code == 405
