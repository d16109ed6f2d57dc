"""Adversarial detectors configured through the monitor's API, calling the iris model (a real `wharf serve`) through
a real gateway that logs to the monitor: the threshold fitted on the reference rows through the predictor's host,
organic traffic inspected, the detectors' own calls (logged by the gateway too) left out, the fit kept across a
restart without calling the model again, and the model's refusals named."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris

from tests.integration.conftest import RunningServer, launch
from tests.integration.test_gateway import RunningGateway
from tests.processes import ROOT
from tests.unit.monitor.running import eventually, running_monitor
from wharf.gateway import GatewaySettings, Replica, Revision, RouteTable, Service
from wharf.logger import LogTarget
from wharf.monitor.detectors.extension import detectors_extension

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
REVISION = "iris-predictor-00001"
FEATURES = load_iris().data


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = tmp_path_factory.mktemp("iris") / "model.joblib"
    subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(path)], check=True, timeout=120)
    server = launch(str(path), "--name", "iris")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(iris: RunningServer) -> Iterator[RunningGateway]:
    running = RunningGateway(GatewaySettings())
    yield running
    running.stop()


def route(gateway: RunningGateway, iris: RunningServer, monitor_url: str) -> None:
    """Route service iris (also at iris-predictor) to the iris server, its payloads logged to the monitor."""
    target = LogTarget(f"{monitor_url}/", "all", "iris", "default", "predictor", REVISION, "http://iris")
    revision = Revision(REVISION, (Replica("iris-0", iris.url, f"127.0.0.1:{iris.grpc_port}", True),), 10.0, 0, target)
    service = Service(
        "default", "iris", "iris", ((REVISION, 100),), {}, {REVISION: revision}, aliases=("iris-predictor",)
    )
    gateway.update(RouteTable((service,)))


def upload(rows: np.ndarray) -> dict[str, Any]:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
    return {"model_name": "iris", "data_tag": "TRAINING", "request": {"inputs": [tensor]}}


def infer(gateway: RunningGateway, rows: np.ndarray, request_id: str) -> None:
    body = {
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]
    }
    headers = {"host": "iris.default.example.com", "x-request-id": request_id}
    url = f"http://127.0.0.1:{gateway.http_port}/v2/models/iris/infer"
    answer = httpx.post(url, json=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_feature_squeezing_through_the_gateway_inspects_organic_traffic_only(
    tmp_path: Path, gateway: RunningGateway, iris: RunningServer
) -> None:
    database = tmp_path / "monitor.db"
    gateway_url = f"http://127.0.0.1:{gateway.http_port}"
    async with running_monitor(database, [detectors_extension], gateway_url=gateway_url) as (monitor, client):
        route(gateway, iris, str(client.base_url).rstrip("/"))
        assert (await client.post("/data/upload", json=upload(FEATURES))).status_code == 200
        answer = await client.post("/detectors/adversarial", json={"modelId": "iris", "fpr": 0.1})
        assert answer.status_code == 200, answer.text
        detector = answer.json()
        assert detector["type"] == "adversarial" and detector["state"] == "ready"
        assert (detector["squeezers"], detector["sampleRate"], detector["protocol"]) == ("levels:5,levels:8", 1.0, "v2")
        fitted = detector["fitted"]
        assert fitted["host"] == "iris-predictor.default.example.com" and fitted["rows"] == len(FEATURES)
        assert fitted["columns"] == [f"input-0-{j}" for j in range(4)]
        assert (fitted["low"], fitted["high"]) == (FEATURES.min(), FEATURES.max()) and 0 <= fitted["threshold"] <= 2

        for i in range(3):
            await asyncio.to_thread(infer, gateway, FEATURES[i * 40 : i * 40 + 2], f"organic-{i}")

        async def inspected() -> dict[str, int] | None:
            counts = (await client.get(f"/detectors/{detector['id']}")).json()["counts"]
            return counts if counts["inspected"] == 6 else None

        counts = await eventually(inspected, "6 organic rows inspected")
        assert counts["failed"] == 0 and counts["dropped"] == 0
        await asyncio.to_thread(gateway.run, gateway.gateway.payloads.flush(10))

        async def skipped() -> int:
            return monitor.ingest.counts["skipped"]

        assert await eventually(skipped, "the detectors' own calls skipped") >= 4  # the fit's and an inspection's
        await monitor.store.flush()
        stored = {request_id for request_id, _ in monitor.store.request_ids("iris")}
        assert stored == {"organic-0", "organic-1", "organic-2"}
        status = (await client.get("/status")).json()["models"]["iris"]
        assert status["rows"] == 6 and status["adversarial"]["inspected"] == 6

    # restored from what the fit kept, without calling the model: the gateway it knows is not there
    unreachable = f"http://127.0.0.1:{closed_port()}"
    async with running_monitor(database, [detectors_extension], gateway_url=unreachable) as (_, client):

        async def ready() -> dict[str, Any] | None:
            found = (await client.get("/detectors")).json()["detectors"]
            return found[0] if found and found[0]["state"] == "ready" else None

        restored = await eventually(ready, "the adversarial detector restored")
        assert restored["id"] == detector["id"] and restored["fitted"] == fitted


async def test_the_models_refusal_and_an_unreachable_gateway_are_named(
    tmp_path: Path, gateway: RunningGateway, iris: RunningServer
) -> None:
    gateway_url = f"http://127.0.0.1:{gateway.http_port}"
    async with running_monitor(tmp_path / "monitor.db", [detectors_extension], gateway_url=gateway_url) as (_, client):
        route(gateway, iris, str(client.base_url).rstrip("/"))
        assert (await client.post("/data/upload", json=upload(FEATURES))).status_code == 200
        answer = await client.post("/detectors/adversarial", json={"modelId": "iris", "output": "no_such_output"})
        assert answer.status_code == 400 and "no_such_output" in answer.json()["error"]
        answer = await client.post("/detectors/adversarial", json={"modelId": "iris", "squeezers": "blur:3"})
        assert answer.status_code == 400 and "blur:3" in answer.json()["error"]
        answer = await client.post("/detectors/adversarial", json={"modelId": "iris", "protocol": "grpc-v2"})
        assert answer.status_code == 400 and "body.protocol" in answer.json()["error"]
        assert (await client.get("/detectors")).json()["detectors"] == []

    unreachable = f"http://127.0.0.1:{closed_port()}"
    async with running_monitor(tmp_path / "monitor.db", [detectors_extension], gateway_url=unreachable) as (_, client):
        answer = await client.post("/detectors/adversarial", json={"modelId": "iris"})
        assert answer.status_code == 502, answer.text
