"""`GET /status`, what the control plane shows of each model: its shape from the store and the parts extensions add,
which models appear, the metrics outside their bounds and the detectors' counts of a real monitor, and that the
answer stays the same while nothing changes."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.unit.monitor.conftest import OpenStore, exchange, numbers
from tests.unit.monitor.running import eventually, log_exchange, running_monitor, v2_classes, v2_rows
from wharf.monitor.detectors.extension import detectors_extension
from wharf.monitor.metrics.extension import metrics_extension
from wharf.monitor.metrics.settings import MetricsSettings
from wharf.monitor.status import monitor_status, rate

COLUMNS = ("a", "b")


@pytest.mark.anyio
async def test_models_with_rows_or_something_to_say_appear_with_what_the_parts_say(open_store: OpenStore) -> None:
    store = open_store()
    store.add_exchange(exchange("r1", numbers(*COLUMNS, rows=3), None, model="logged"))
    await store.add_reference("reference-only", "TRAINING", numbers(*COLUMNS, rows=5), None)
    await store.flush()
    assert monitor_status(store, []) == {"models": {"logged": {"rows": 3, "outsideBounds": []}}}

    def metrics() -> dict[str, Any]:
        return {"logged": {"outsideBounds": ["kstest", "spd"]}, "reference-only": {"outsideBounds": []}}

    def detectors() -> dict[str, Any]:
        return {"reference-only": {"outliers": {"inspected": 0, "detected": 0, "rate": 0.0}}}

    assert monitor_status(store, [metrics, detectors]) == {
        "models": {
            "logged": {"rows": 3, "outsideBounds": ["kstest", "spd"]},
            "reference-only": {
                "rows": 0,
                "outsideBounds": [],
                "outliers": {"inspected": 0, "detected": 0, "rate": 0.0},
            },
        }
    }


def test_the_rate_is_rounded_to_four_digits_and_zero_before_any_row() -> None:
    assert (rate(1, 3), rate(2, 3), rate(0, 0), rate(5, 5)) == (0.3333, 0.6667, 0.0, 1.0)


@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_a_monitors_status_shows_drift_outside_bounds_and_outlier_counts_and_is_stable(tmp_path: Path) -> None:
    fast = functools.partial(metrics_extension, settings=MetricsSettings(interval_s=0.05))
    extensions = [fast, detectors_extension]
    async with running_monitor(tmp_path / "monitor.db", extensions) as (_, client):
        rng = np.random.default_rng(3)
        training = rng.normal([5.8, 3.0, 3.8, 1.2], [0.8, 0.4, 1.7, 0.7], size=(300, 4))
        tensor = {"name": "input-0", "shape": [300, 4], "datatype": "FP64", "data": training.ravel().tolist()}
        upload = {"model_name": "iris", "data_tag": "TRAINING", "request": {"inputs": [tensor]}}
        assert (await client.post("/data/upload", json=upload)).status_code == 200
        assert (await client.get("/status")).json() == {"models": {}}  # reference rows only

        assert (await client.post("/detectors/outliers", json={"modelId": "iris"})).status_code == 200
        zero = {"inspected": 0, "detected": 0, "rate": 0.0}
        assert (await client.get("/status")).json() == {
            "models": {"iris": {"rows": 0, "outsideBounds": [], "outliers": zero}}
        }

        shifted = training[:100] + [0.0, 0.0, 3.0, 0.0]  # petal_length shifted by two standard deviations
        await log_exchange(client, "shifted", v2_rows(shifted), v2_classes("iris", [1] * 100))
        drift = {"modelId": "iris", "referenceTag": "TRAINING"}
        answer = await client.post("/metrics/drift/kstest/request", json=drift)
        assert answer.status_code == 200, answer.text
        assert (await client.post("/metrics/drift/meanshift/request", json=drift)).status_code == 200

        async def settled() -> dict[str, Any] | None:
            status = (await client.get("/status")).json()["models"].get("iris", {})
            done = status.get("outliers", {}).get("inspected") == 100 and status.get("outsideBounds")
            return status if done else None

        status = await eventually(settled, "drift found and the rows inspected")
        assert set(status) == {"rows", "outsideBounds", "outliers"} and status["rows"] == 100
        assert status["outsideBounds"] == sorted(status["outsideBounds"]) and "kstest" in status["outsideBounds"]
        outliers = status["outliers"]
        assert outliers["detected"] > 0 and outliers["rate"] == round(outliers["detected"] / 100, 4)

        # metrics recomputed every 50 ms meanwhile: the answer stays the same
        first = (await client.get("/status")).content
        await asyncio.sleep(0.3)
        assert (await client.get("/status")).content == first
