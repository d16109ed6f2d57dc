"""The detectors' API in the monitor's own app on a real socket, over its real SQLite store: outlier detectors
fitted on uploaded reference rows, fed by the ingest (events to a real HTTP sink, counts in `GET /detectors`,
`/status` and Prometheus), what is missing or wrong named, replacement and deletion, the configuration kept across
a restart, the detectors' own calls left out, and rows past a full queue dropped and counted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tests.event_sink import EventSink
from tests.unit.monitor.running import eventually, log_exchange, running_monitor, v2_classes, v2_rows
from wharf.monitor.detectors import OUTLIER_TYPE
from wharf.monitor.detectors.extension import detectors_extension
from wharf.monitor.detectors.queue import InspectionQueue

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ORDINARY = np.array([[5.0, 3.0, 4.0, 1.2]])
FAR = np.array([[5.0, 3.0, 40.0, 1.2]])  # petal_length far out


@pytest.fixture
def sink() -> Iterator[EventSink]:
    running = EventSink()
    yield running
    running.close()


def reference(rows: int = 300, model: str = "iris", tag: str = "TRAINING") -> dict[str, Any]:
    """An upload of `rows` reference rows, one named tensor per feature."""
    data = np.random.default_rng(7).normal([5.8, 3.0, 3.8, 1.2], [0.8, 0.4, 1.7, 0.7], size=(rows, 4))
    inputs = [
        {"name": name, "shape": [rows], "datatype": "FP64", "data": data[:, j].tolist()}
        for j, name in enumerate(FEATURES)
    ]
    return {"model_name": model, "data_tag": tag, "request": {"inputs": inputs}}


def named_request(rows: np.ndarray, order: list[str]) -> bytes:
    """A V2 request of one FP32 tensor per feature, in `order`."""
    inputs = [
        {"name": name, "shape": [len(rows)], "datatype": "FP32", "data": rows[:, FEATURES.index(name)].tolist()}
        for name in order
    ]
    return orjson.dumps({"inputs": inputs})


async def upload(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await client.post("/data/upload", json=body)
    assert answer.status_code == 200, answer.text


async def listed(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer = await client.get("/detectors")
    assert answer.status_code == 200, answer.text
    return answer.json()["detectors"]


async def test_an_outlier_is_sent_to_the_reply_url_with_the_events_id_and_counted(
    tmp_path: Path, sink: EventSink
) -> None:
    async with running_monitor(tmp_path / "monitor.db", [detectors_extension]) as (monitor, client):
        await upload(client, reference())
        answer = await client.post("/detectors/outliers", json={"modelId": "iris", "replyUrl": sink.url})
        assert answer.status_code == 200, answer.text
        detector = answer.json()
        assert detector["type"] == "outliers" and detector["state"] == "ready" and detector["replaced"] is None
        assert (detector["modelId"], detector["referenceTag"], detector["method"]) == (
            "iris",
            "TRAINING",
            "isolation_forest",
        )
        assert detector["contamination"] == 0.01 and detector["replyUrl"] == sink.url
        assert detector["fitted"]["columns"] == FEATURES and detector["fitted"]["threshold"] > 0
        assert detector["counts"] == {"inspected": 0, "detected": 0, "failed": 0, "dropped": 0}

        # the logged tensors in another order than the reference's: rows are put in the detector's order
        reverse = FEATURES[::-1]
        await log_exchange(client, "ordinary", named_request(ORDINARY, reverse), v2_classes("iris", [1]))
        two = np.concatenate([ORDINARY, FAR])
        await log_exchange(client, "far", named_request(two, reverse), v2_classes("iris", [1, 2]))

        [event] = await asyncio.to_thread(sink.wait_for, 1)
        assert event["type"] == OUTLIER_TYPE and event["id"] == "far" and event["inferenceservicename"] == "iris"
        assert event["endpoint"] == "iris-predictor-00001" and event["component"] == "predictor"
        data = orjson.loads(event.data)
        assert data["is_outlier"] == [0, 1]
        assert int(np.argmax(data["feature_score"][1])) == FEATURES.index("petal_length")

        async def counted() -> dict[str, int] | None:
            counts = (await listed(client))[0]["counts"]
            return counts if counts["inspected"] == 3 else None

        assert await eventually(counted, "3 rows inspected") == {
            "inspected": 3,
            "detected": 1,
            "failed": 0,
            "dropped": 0,
        }
        status = (await client.get("/status")).json()
        assert status["models"]["iris"]["outliers"] == {"inspected": 3, "detected": 1, "rate": 0.3333}
        labels = {"detector": "outlier", "namespace": "default", "service": "iris"}
        assert monitor.registry.get_sample_value("wharf_monitor_detected_rows_total", labels) == 1.0
        assert monitor.registry.get_sample_value("wharf_monitor_inspected_rows_total", labels) == 3.0


async def test_what_is_missing_or_wrong_is_named(tmp_path: Path) -> None:
    async with running_monitor(tmp_path / "monitor.db", [detectors_extension]) as (_, client):
        await upload(client, reference())
        await upload(client, reference(rows=1, model="tiny"))
        refused = {
            404: [
                ({"modelId": "nope"}, "no model 'nope'"),
                ({"modelId": "iris", "referenceTag": "TEST"}, "no reference rows tagged 'TEST'"),
            ],
            400: [
                ({"modelId": "tiny"}, "at least 2 reference rows"),
                ({}, "body.modelId"),
                ({"modelId": "iris", "method": "lof"}, "body.method"),
                ({"modelId": "iris", "contamination": 0.9}, "body.contamination"),
                ({"modelId": "iris", "window": 10}, "body.window"),
                ({"modelId": "iris", "replyUrl": "sink:8080"}, "body.replyUrl"),
            ],
        }
        for status, cases in refused.items():
            for body, named in cases:
                answer = await client.post("/detectors/outliers", json=body)
                assert answer.status_code == status and named in answer.json()["error"], (body, answer.text)
        answer = await client.post("/detectors/outliers", content=b"{not json")
        assert answer.status_code == 400 and "error" in answer.json()

        answer = await client.post("/detectors/adversarial", json={"modelId": "iris"})
        assert answer.status_code == 501 and "WHARF_MONITOR_GATEWAY_URL" in answer.json()["error"]
        for answer in (await client.get("/detectors/nope"), await client.delete("/detectors/nope")):
            assert answer.status_code == 404 and "no detector 'nope'" in answer.json()["error"]
        assert await listed(client) == []


async def test_a_second_detector_replaces_the_first_and_a_deleted_one_stops(tmp_path: Path, sink: EventSink) -> None:
    async with running_monitor(tmp_path / "monitor.db", [detectors_extension], reply_url=sink.url) as (_, client):
        await upload(client, reference())
        first = (await client.post("/detectors/outliers", json={"modelId": "iris"})).json()
        answer = await client.post("/detectors/outliers", json={"modelId": "iris", "method": "elliptic_envelope"})
        second = answer.json()
        assert second["replaced"] == first["id"] and second["method"] == "elliptic_envelope"
        assert [d["id"] for d in await listed(client)] == [second["id"]]

        answer = await client.delete(f"/detectors/{second['id']}")
        assert answer.status_code == 200 and answer.json()["id"] == second["id"]
        assert await listed(client) == []
        await log_exchange(client, "far", v2_rows(FAR), v2_classes("iris", [2]))
        await asyncio.sleep(0.3)  # time for an inspection, were there a detector
        assert sink.events == [] and (await client.get("/status")).json()["models"]["iris"] == {
            "rows": 1,
            "outsideBounds": [],
        }


async def test_detectors_are_kept_and_fitted_again_after_a_restart(tmp_path: Path, sink: EventSink) -> None:
    database = tmp_path / "monitor.db"
    async with running_monitor(database, [detectors_extension]) as (_, client):
        await upload(client, reference())
        configured = (await client.post("/detectors/outliers", json={"modelId": "iris"})).json()

    # the default reply URL of the restarted monitor is the sink's
    async with running_monitor(database, [detectors_extension], reply_url=sink.url) as (_, client):

        async def ready() -> dict[str, Any] | None:
            found = await listed(client)
            return found[0] if found and found[0]["state"] == "ready" else None

        restored = await eventually(ready, "the detector fitted again")
        assert restored["id"] == configured["id"] and restored["fitted"] == configured["fitted"]  # a seeded fit
        assert restored["counts"]["inspected"] == 0
        await log_exchange(client, "far", v2_rows(FAR), v2_classes("iris", [2]))
        [event] = await asyncio.to_thread(sink.wait_for, 1)
        assert event["id"] == "far" and orjson.loads(event.data)["is_outlier"] == [1]


async def test_the_detectors_own_calls_are_neither_stored_nor_inspected(tmp_path: Path) -> None:
    async with running_monitor(tmp_path / "monitor.db", [detectors_extension]) as (monitor, client):
        await upload(client, reference())
        assert (await client.post("/detectors/outliers", json={"modelId": "iris"})).status_code == 200
        await log_exchange(client, "wharf-monitor-0123", v2_rows(FAR), v2_classes("iris", [2]))
        await log_exchange(client, "organic", v2_rows(ORDINARY), v2_classes("iris", [1]))
        await monitor.store.flush()
        assert [request_id for request_id, _ in monitor.store.request_ids("iris")] == ["organic"]
        assert monitor.ingest.counts["skipped"] == 2
        assert monitor.registry.get_sample_value("wharf_monitor_events_skipped_total") == 2.0

        async def inspected() -> int:
            return (await listed(client))[0]["counts"]["inspected"]

        assert await eventually(inspected, "the organic row inspected") == 1


async def test_rows_past_a_full_queue_are_dropped_and_counted(tmp_path: Path) -> None:
    database = tmp_path / "monitor.db"
    async with running_monitor(database, [detectors_extension], detector_queue_rows=1) as (monitor, client):
        await upload(client, reference())
        assert (await client.post("/detectors/outliers", json={"modelId": "iris"})).status_code == 200
        await log_exchange(client, "two-rows", v2_rows(np.concatenate([ORDINARY, FAR])), v2_classes("iris", [1, 2]))
        await log_exchange(client, "one-row", v2_rows(ORDINARY), v2_classes("iris", [1]))

        async def inspected() -> dict[str, int] | None:
            counts = (await listed(client))[0]["counts"]
            return counts if counts["inspected"] else None

        assert await eventually(inspected, "the one-row request inspected") == {
            "inspected": 1,
            "detected": 0,
            "failed": 0,
            "dropped": 2,
        }
        assert monitor.store.held[monitor.store.schema("iris").key].rows == 3  # stored all the same
        assert (
            monitor.registry.get_sample_value("wharf_monitor_detector_dropped_rows_total", {"detector": "outlier"}) == 2
        )


async def test_the_queue_is_bounded_by_rows_and_taken_in_batches() -> None:
    queue: InspectionQueue[str] = InspectionQueue(limit_rows=10, linger_s=0)
    assert queue.offer("a", 4) and queue.offer("b", 4) and not queue.offer("c", 4) and queue.offer("d", 2)
    assert queue.rows == 10 and len(queue) == 3
    assert await queue.take(max_rows=8) == ["a", "b"]
    assert await queue.take(max_rows=1) == ["d"]  # at least one item, whatever its rows
    assert queue.rows == 0
    waiting = asyncio.create_task(queue.take(max_rows=8))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    queue.offer("e", 1)
    assert await asyncio.wait_for(waiting, 5) == ["e"]
