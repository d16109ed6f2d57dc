"""The metrics mounted in the monitor's own app (`wharf.monitor.app`) over its real SQLite store: data uploaded
through TrustyAI's upload endpoint, metrics computed and scheduled, the gauge in its `/metrics` text, the counts in
`/info`, and the scheduler stopped with the monitor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.unit.monitor.metrics.conftest import fairness_body, fairness_example
from wharf.monitor.app import Monitor, create_app
from wharf.monitor.metrics.extension import metrics_extension
from wharf.monitor.metrics.settings import MetricsSettings
from wharf.monitor.settings import MonitorSettings

pytestmark = pytest.mark.anyio


def upload(tag: str | None, gender: list[int], income: list[float], approved: list[int]) -> dict[str, Any]:
    n = len(gender)
    body: dict[str, Any] = {
        "model_name": "credit",
        "request": {
            "inputs": [
                {"name": "gender", "shape": [n], "datatype": "INT64", "data": gender},
                {"name": "income", "shape": [n], "datatype": "FP64", "data": income},
            ]
        },
        "response": {"outputs": [{"name": "approved", "shape": [n], "datatype": "INT64", "data": approved}]},
    }
    return body | ({"data_tag": tag} if tag else {})


@pytest.fixture
async def monitor(tmp_path: Path) -> AsyncIterator[Monitor]:
    monitor = Monitor.open(MonitorSettings(database=tmp_path / "monitor.db", flush_interval_s=0.01))
    try:
        yield monitor
    finally:
        for hook in reversed(monitor.on_stop):
            await hook()
        await asyncio.to_thread(monitor.store.close)


async def test_metrics_over_the_monitors_store(monitor: Monitor) -> None:
    routers = metrics_extension(monitor, MetricsSettings(interval_s=0.05))
    transport = httpx.ASGITransport(app=create_app(monitor, routers))
    async with httpx.AsyncClient(transport=transport, base_url="http://monitor", timeout=30) as client:
        rng = np.random.default_rng(5)
        reference = upload("TRAINING", rng.integers(0, 2, 500).tolist(), rng.normal(3000, 500, 500).tolist(), [1] * 500)
        assert (await client.post("/data/upload", json=reference)).status_code == 200
        logged = fairness_example()
        income = (logged["income"] + 1000).tolist()  # income drifted
        answer = await client.post(
            "/data/upload", json=upload(None, logged["gender"].tolist(), income, logged["approved"].tolist())
        )
        assert answer.status_code == 200, answer.text
        await monitor.store.flush()

        spd = fairness_body()
        answer = await client.post("/metrics/group/fairness/spd", json=spd)
        assert answer.status_code == 200, answer.text
        assert answer.json()["value"] == pytest.approx(-0.3)
        drift = {"modelId": "credit", "referenceTag": "TRAINING", "fitColumns": ["income"]}
        answer = await client.post("/metrics/drift/kstest", json=drift)
        assert answer.json()["thresholds"]["namedOutsideBounds"] == {"income": True}
        answer = await client.post("/metrics/drift/kstest", json=drift | {"referenceTag": "TEST"})
        assert answer.status_code == 404 and "TEST" in answer.json()["error"]

        made = await client.post("/metrics/group/fairness/spd/request", json=spd)
        request_id = made.json()["requestId"]
        for _ in range(200):  # the scheduler computes every 0.05 s
            text = (await client.get("/metrics")).text
            if "trustyai_spd{" in text:
                break
            await asyncio.sleep(0.05)
        assert f'request="{request_id}"' in text and 'protected="gender"' in text
        info = (await client.get("/info")).json()
        assert info["credit"]["metrics"]["scheduledMetadata"]["metricCounts"] == {"SPD": 1}
