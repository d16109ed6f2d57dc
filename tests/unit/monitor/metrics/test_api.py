"""The metrics router over HTTP (httpx on the ASGI app): TrustyAI's paths, bodies and answers, scheduling, and
errors as `{"error": ...}` (mapped, as in the monitor's app, by a handler of `WharfError`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from tests.unit.monitor.metrics.conftest import drift_body, fairness_body
from tests.unit.monitor.metrics.fakes import FrameRows
from wharf.errors import WharfError
from wharf.monitor.metrics import Scheduler, metrics_router
from wharf.monitor.metrics.registry import METRICS

pytestmark = pytest.mark.anyio

SPD = fairness_body()
MEANSHIFT = drift_body(batchSize=1500)


@pytest.fixture
def scheduler(rows: FrameRows, tmp_path: Path) -> Scheduler:
    return Scheduler(rows, tmp_path / "monitor.db", CollectorRegistry())


@pytest.fixture
async def client(rows: FrameRows, scheduler: Scheduler) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()

    @app.exception_handler(WharfError)
    async def wharf_error(_: Request, error: WharfError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.http_status)

    app.include_router(metrics_router(rows, scheduler))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://monitor", timeout=30) as client:
        yield client


async def test_spd_now(client: httpx.AsyncClient) -> None:
    answer = await client.post("/metrics/group/fairness/spd", json=SPD)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["value"] == pytest.approx(-0.3) and body["name"] == "SPD" and body["type"] == "metric"
    assert body["thresholds"] == {"lowerBound": -0.1, "upperBound": 0.1, "outsideBounds": True}
    uuid.UUID(body["id"])


async def test_trustyais_deprecated_paths_of_spd_and_dir(client: httpx.AsyncClient) -> None:
    assert (await client.post("/metrics/dir", json=SPD)).json()["value"] == pytest.approx(0.5)
    made = await client.post("/metrics/spd/request", json=SPD)
    assert made.status_code == 200
    [listed] = (await client.get("/metrics/group/fairness/spd/requests")).json()["requests"]
    assert listed["id"] == made.json()["requestId"]
    assert (await client.post("/metrics/kstest", json=MEANSHIFT)).status_code in (404, 405)


async def test_drift_now(client: httpx.AsyncClient) -> None:
    answer = await client.post("/metrics/drift/meanshift", json=MEANSHIFT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["thresholds"]["namedOutsideBounds"] == {"x1": False, "x2": True, "x3": False, "label": False}


async def test_every_metric_has_its_endpoints(client: httpx.AsyncClient) -> None:
    for metric in METRICS.values():
        definition = await client.get(f"{metric.path}/definition")
        assert definition.status_code == 200 and definition.text == metric.definition
        listed = await client.get(f"{metric.path}/requests")
        assert listed.json() == {"requests": []}


async def test_schedule_list_and_delete(client: httpx.AsyncClient, scheduler: Scheduler) -> None:
    made = await client.post("/metrics/group/fairness/spd/request", json=SPD | {"requestName": "parity"})
    assert made.status_code == 200, made.text
    request_id = made.json()["requestId"]
    assert set(made.json()) == {"requestId", "timestamp"}
    await client.post("/metrics/drift/kstest/request", json=MEANSHIFT)

    [listed] = (await client.get("/metrics/group/fairness/spd/requests")).json()["requests"]
    assert listed["id"] == request_id
    assert listed["request"] == SPD | {"requestName": "parity", "metricName": "SPD", "thresholdDelta": 0.1}
    assert listed["status"] == {
        "outsideBounds": None,
        "since": None,
        "computedAt": None,
        "value": None,
        "namedValues": None,
        "thresholds": None,
        "error": None,
    }
    await scheduler.recompute()
    [listed] = (await client.get("/metrics/group/fairness/spd/requests")).json()["requests"]
    assert listed["status"]["outsideBounds"] is True and listed["status"]["value"] == pytest.approx(-0.3)
    assert listed["status"]["since"] == listed["status"]["computedAt"]
    assert listed["status"]["thresholds"] == {"lowerBound": -0.1, "upperBound": 0.1, "namedOutsideBounds": None}

    everything = (await client.get("/metrics/all/requests")).json()["requests"]
    assert [r["request"]["metricName"] for r in everything] == ["SPD", "KSTEST"]
    assert (await client.get("/metrics/all/requests?type=all")).json()["requests"] == everything
    fairness = (await client.get("/metrics/all/requests", params={"type": "fairness"})).json()["requests"]
    assert [r["id"] for r in fairness] == [request_id]
    wrong = await client.get("/metrics/all/requests", params={"type": "bias"})
    assert wrong.status_code == 400 and "type" in wrong.json()["error"]

    elsewhere = await client.request("DELETE", "/metrics/group/fairness/dir/request", json={"requestId": request_id})
    assert elsewhere.status_code == 404 and request_id in elsewhere.json()["error"]
    removed = await client.request("DELETE", "/metrics/group/fairness/spd/request", json={"requestId": request_id})
    assert removed.status_code == 200 and removed.text == "Removed"
    again = await client.request("DELETE", "/metrics/group/fairness/spd/request", json={"requestId": request_id})
    assert again.status_code == 404
    assert [r["request"]["metricName"] for r in (await client.get("/metrics/all/requests")).json()["requests"]] == [
        "KSTEST"
    ]


@pytest.mark.parametrize(
    "method, path, body, status, words",
    [
        (
            "POST",
            "/metrics/group/fairness/spd",
            SPD | {"protectedAttribute": "age"},
            400,
            ["protectedAttribute", "age"],
        ),
        ("POST", "/metrics/group/fairness/dir", SPD | {"modelId": "nope"}, 404, ["nope"]),
        ("POST", "/metrics/drift/kstest", MEANSHIFT | {"referenceTag": "TEST"}, 404, ["TEST"]),
        ("POST", "/metrics/drift/psi", MEANSHIFT | {"fitColumns": ["x9"]}, 400, ["fitColumns", "x9"]),
        ("POST", "/metrics/drift/psi/request", MEANSHIFT | {"fitColumns": ["x9"]}, 400, ["fitColumns", "x9"]),
        ("POST", "/metrics/group/fairness/eod", SPD | {"favorableOutcome": "yes"}, 400, ["favorableOutcome"]),
        ("POST", "/metrics/group/fairness/spd/request", {"modelId": "credit"}, 400, ["protectedAttribute"]),
        ("DELETE", "/metrics/drift/kstest/request", {"requestId": "not-a-uuid"}, 400, ["requestId"]),
        ("DELETE", "/metrics/drift/kstest/request", {}, 400, ["requestId"]),
    ],
)
async def test_errors_name_the_problem(
    client: httpx.AsyncClient, method: str, path: str, body: object, status: int, words: list[str]
) -> None:
    answer = await client.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    assert all(word in answer.json()["error"] for word in words), answer.json()


async def test_a_body_that_is_not_json(client: httpx.AsyncClient) -> None:
    answer = await client.post("/metrics/drift/kstest", content=b"{not json")
    assert answer.status_code == 400 and answer.json()["error"].startswith("body: not JSON")
    answer = await client.post("/metrics/drift/kstest", json=[1])
    assert answer.status_code == 400 and answer.json()["error"].startswith("body: Input should be a valid dictionary")
