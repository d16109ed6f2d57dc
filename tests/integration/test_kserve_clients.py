"""KServe's own REST client (`kserve.InferenceRESTClient`, from PyPI) against a real `wharf serve` of a KServe
custom predictor: V1 liveness at `/`, the V1 model list, model readiness and inference over V1 and V2."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from kserve import InferenceRESTClient, InferRequest, InferInput, RESTConfig

from tests.integration.conftest import START_TIMEOUT_S, RunningServer
from tests.integration.test_kserve_predictor import ENV, PREDICTORS, WHARF
from tests.processes import start

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def scaler() -> Iterator[RunningServer]:
    """`wharf serve kserve_predictors:Scaler` (a `kserve.Model` subclass) from the predictors' directory."""
    command = [
        str(WHARF),
        "serve",
        "kserve_predictors:Scaler",
        "--name",
        "scaler",
        "--http-port",
        "0",
        "--grpc-port",
        "0",
    ]
    proc, event, lines = start(command, ENV, "serving", START_TIMEOUT_S, cwd=PREDICTORS)
    server = RunningServer(proc, event["http_port"], event.get("grpc_port"), lines)
    yield server
    server.stop()


def _client(protocol: str) -> InferenceRESTClient:
    return InferenceRESTClient(RESTConfig(protocol=protocol, timeout=10, retries=0))


def test_kserve_v1_client_sees_the_server_live_and_its_model(scaler: RunningServer) -> None:
    async def ask() -> tuple[bool, bool, dict]:
        client = _client("v1")
        try:
            live = await client.is_server_live(scaler.url)
            ready = await client.is_model_ready(scaler.url, "scaler")
            answer = await client.infer(scaler.url, {"instances": [[1, 2]]}, model_name="scaler")
        finally:
            await client.close()
        return live, ready, answer

    assert asyncio.run(ask()) == (True, True, {"predictions": [[2.0, 4.0]]})


def test_v1_routes_answer_as_kserve_does(scaler: RunningServer) -> None:
    with httpx.Client(base_url=scaler.url, timeout=10) as client:
        root = client.get("/")
        assert (root.status_code, root.json()) == (200, {"status": "alive"})
        assert client.get("/v1/models").json() == {"models": ["scaler"]}
        refused = client.post("/")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET", refused.text
        assert client.post("/v1/models").status_code == 405


def test_kserve_v2_client_over_the_same_server(scaler: RunningServer) -> None:
    async def ask() -> tuple[bool, bool, list[float]]:
        client = _client("v2")
        request = InferRequest("scaler", [InferInput("x", [1, 2], "FP32", [1.0, 2.0])])
        try:
            live = await client.is_server_live(scaler.url)
            ready = await client.is_server_ready(scaler.url)
            answer = await client.infer(scaler.url, request, model_name="scaler")
        finally:
            await client.close()
        return live, ready, answer.outputs[0].data

    assert asyncio.run(ask()) == (True, True, [2.0, 4.0])
