"""The monitor's HTTP app on a real socket: ingestion, TrustyAI's data endpoints, metrics, mounted routers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import APIRouter

from wharf.embedded_http import EmbeddedServer, listen
from wharf.errors import NotFound
from wharf.logger.events import LogTarget, PayloadEvent
from wharf.monitor.app import Monitor, create_app
from wharf.monitor.settings import MonitorSettings

pytestmark = pytest.mark.anyio

TARGET = LogTarget("http://sink", "all", "iris", "default", "predictor", "iris-predictor-00001", "http://iris")


def v2_request(*rows: list[float]) -> bytes:
    data = [value for row in rows for value in row]
    return orjson.dumps({"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP32", "data": data}]})


def v2_response(*classes: int) -> bytes:
    tensor = {"name": "predict", "shape": [len(classes)], "datatype": "INT64", "data": list(classes)}
    return orjson.dumps({"model_name": "iris", "outputs": [tensor]})


def tensors(**columns: list[float]) -> list[dict[str, object]]:
    return [{"name": name, "shape": [len(data)], "datatype": "FP64", "data": data} for name, data in columns.items()]


def ground_truth_upload(request_id: str, row: list[float], label: int) -> dict[str, object]:
    """An upload of the ground truth `label` of logged request `request_id`, whose input row was `row`."""
    inputs = [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row, "executionIDs": [request_id]}]
    outputs = [{"name": "predict", "shape": [1], "datatype": "INT64", "data": [label]}]
    return {
        "model_name": "iris",
        "is_ground_truth": True,
        "request": {"inputs": inputs},
        "response": {"outputs": outputs},
    }


@asynccontextmanager
async def serving(
    tmp_path: Path, routers: Sequence[APIRouter] = ()
) -> AsyncIterator[tuple[Monitor, httpx.AsyncClient]]:
    monitor = Monitor.open(MonitorSettings(database=tmp_path / "monitor.db", flush_interval_s=0.01))
    listener = listen("127.0.0.1", 0)
    server = EmbeddedServer(create_app(monitor, routers))
    task = await server.start(listener)
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield monitor, client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        monitor.store.close()


async def log_exchange(client: httpx.AsyncClient, request_id: str, request: bytes, response: bytes) -> None:
    for status, body in ((200, response), (None, request)):  # the answer first: either order pairs
        headers, data = PayloadEvent(TARGET, request_id, body, "application/json", {}, status).to_http()
        answer = await client.post("/", headers=headers, content=data)
        assert answer.status_code == 202, answer.text


async def test_logged_rows_reference_data_names_and_labels(tmp_path: Path) -> None:
    async with serving(tmp_path) as (monitor, client):
        await log_exchange(client, "r1", v2_request([5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]), v2_response(0, 1))
        await log_exchange(client, "r2", v2_request([7.7, 3.0, 6.1, 2.3]), v2_response(2))
        await monitor.store.flush()
        info = (await client.get("/info")).json()["iris"]
        assert info["data"]["observations"] == 3 and info["metrics"]["scheduledMetadata"]["metricCounts"] == {}
        assert info["data"]["inputSchema"]["items"]["input-0-3"] == {
            "type": "FP32",
            "name": "input-0-3",
            "columnIndex": 3,
        }
        assert info["data"]["outputSchema"]["items"]["predict"]["columnIndex"] == 4

        names = {
            "input-0-0": "sepal_length",
            "input-0-1": "sepal_width",
            "input-0-2": "petal_length",
            "input-0-3": "petal_width",
        }
        answer = await client.post(
            "/info/names", json={"modelId": "iris", "inputMapping": names, "outputMapping": {"predict": "species"}}
        )
        assert answer.status_code == 200, answer.text
        info = (await client.get("/info")).json()["iris"]["data"]
        assert info["inputSchema"]["nameMapping"] == names and "species" in info["outputSchema"]["items"]

        upload = {
            "model_name": "iris",
            "data_tag": "TRAINING",
            "request": {
                "inputs": tensors(
                    sepal_length=[5.0, 6.0], sepal_width=[3.0, 3.0], petal_length=[1.5, 4.5], petal_width=[0.2, 1.5]
                )
            },
            "response": {"outputs": [{"name": "species", "shape": [2], "datatype": "INT64", "data": [0, 1]}]},
        }
        answer = await client.post("/data/upload", json=upload)
        assert answer.status_code == 200 and answer.text.startswith("2 datapoints"), answer.text
        assert (await client.get("/info/tags")).json() == {"iris": {"TRAINING": 2}}
        assert monitor.store.reference("iris", "TRAINING")["petal_length"].tolist() == [1.5, 4.5]

        answer = await client.post(
            "/data/labels", json={"modelId": "iris", "requestId": "r1", "labels": {"species": [0, 2]}}
        )
        assert answer.status_code == 200, answer.text
        answer = await client.post("/data/upload", json=ground_truth_upload("r2", [7.7, 3.0, 6.1, 2.3], 2))
        assert answer.status_code == 200 and answer.text.startswith("1 ground truths"), answer.text
        labelled = monitor.store.labelled("iris")
        assert labelled["ground_truth:species"].tolist() == [0, 2, 2] and labelled["species"].tolist() == [0, 1, 2]
        assert (await client.get("/info")).json()["iris"]["labelled"] == 3

        ids = (await client.get("/info/inference/ids/iris")).json()
        assert [row["id"] for row in ids] == ["r1", "r1", "r2"] and ids[0]["timestamp"].endswith("+00:00")
        answer = await client.request("DELETE", "/info/names", content=b"iris")
        assert answer.status_code == 200 and monitor.store.input_names("iris")[0] == "input-0-0"


async def test_what_is_refused_is_named_and_nothing_stored_is_lost(tmp_path: Path) -> None:
    async with serving(tmp_path) as (monitor, client):
        await log_exchange(client, "r1", v2_request([5.1, 3.5, 1.4, 0.2]), v2_response(0))
        wrong = {"model_name": "iris", "data_tag": "TRAINING", "request": {"inputs": tensors(a=[1.0], b=[2.0])}}
        answer = await client.post("/data/upload", json=wrong)
        assert answer.status_code == 400 and "unexpected: ['a', 'b']" in answer.json()["error"]
        answer = await client.post("/data/upload", json=ground_truth_upload("r1", [9, 9, 9, 9], 1))
        assert answer.status_code == 400 and "not those logged" in answer.json()["error"]
        answer = await client.post(
            "/data/labels", json={"modelId": "iris", "requestId": "nope", "labels": {"predict": [1]}}
        )
        assert answer.status_code == 404 and "no logged request 'nope'" in answer.json()["error"]
        answer = await client.post(
            "/data/labels", json={"modelId": "nope", "requestId": "r1", "labels": {"predict": [1]}}
        )
        assert answer.status_code == 404 and "no model 'nope'" in answer.json()["error"]
        answer = await client.post("/info/names", json={"modelId": "iris", "inputMapping": {"x": "y"}})
        assert answer.status_code == 400 and "unknown inputs ['x']" in answer.json()["error"]
        answer = await client.post("/info/names", content=b"{")
        assert answer.status_code == 400 and "malformed JSON" in answer.json()["error"]
        assert (await client.get("/info/inference/ids/iris?type=some")).status_code == 400
        answer = await client.get("/nowhere")
        assert answer.status_code == 404 and answer.json() == {"error": "Not Found"}
        await monitor.store.flush()
        assert len(monitor.store.inferences("iris")) == 1 and monitor.store.labelled("iris").empty
        metrics = (await client.get("/q/metrics")).text
        assert 'wharf_monitor_events_total{type="request"} 1.0' in metrics
        assert "wharf_monitor_rows_stored_total 1.0" in metrics and 'wharf_monitor_rows{model="iris"} 1.0' in metrics


async def test_untagged_uploads_are_stored_as_logged_rows(tmp_path: Path) -> None:
    async with serving(tmp_path) as (monitor, client):
        upload = {
            "model_name": "credit",
            "request": {"inputs": tensors(age=[30.0, 40.0])},
            "response": {"outputs": tensors(ok=[1.0, 0.0])},
        }
        answer = await client.post("/data/upload", json=upload)
        assert answer.status_code == 200, answer.text
        assert monitor.store.inferences("credit")["age"].tolist() == [30.0, 40.0]


async def test_routers_mounted_beside_the_data_endpoints_share_the_error_answers(tmp_path: Path) -> None:
    router = APIRouter()

    @router.get("/metrics/extra/{model}")
    async def extra(model: str) -> dict[str, list[str]]:
        if model == "missing":
            raise NotFound("no model 'missing'")
        return {"inputs": []}

    async with serving(tmp_path, [router]) as (monitor, client):
        monitor.scheduled = lambda model: {"SPD": 1}
        await log_exchange(client, "r1", v2_request([5.1, 3.5, 1.4, 0.2]), v2_response(0))
        assert (await client.get("/metrics/extra/iris")).json() == {"inputs": []}
        assert (await client.get("/metrics/extra/missing")).json() == {"error": "no model 'missing'"}
        info = (await client.get("/info")).json()["iris"]
        assert info["metrics"]["scheduledMetadata"]["metricCounts"] == {"SPD": 1}
