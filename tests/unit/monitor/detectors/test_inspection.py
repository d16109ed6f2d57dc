"""`Inspector` and `DetectorReports`: findings reach a real HTTP sink as CloudEvents (read back with the SDK) through
the payload logger's poster, and are counted per service in a Prometheus registry."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from tests.event_sink import EventSink
from wharf.errors import ServerUnreachable
from wharf.monitor.detectors import (
    ADVERSARIAL_TYPE,
    OUTLIER_TYPE,
    AdversarialDetector,
    DetectorReports,
    Inspector,
    Logged,
    Origin,
    OutlierDetector,
    Round,
    Sampler,
)

pytestmark = pytest.mark.anyio
SOURCE = "http://127.0.0.1:8003/"


@pytest.fixture
def sink() -> Iterator[EventSink]:
    running = EventSink()
    yield running
    running.close()


@pytest.fixture(scope="module")
def outliers() -> OutlierDetector:
    return OutlierDetector.fit(np.random.default_rng(0).normal(size=(1000, 3)))


def _origin(id: str) -> Origin:
    return Origin(id, "iris", "default", "predictor", "iris-predictor-00001")


async def test_an_inference_with_an_outlier_is_sent_as_a_cloudevent_and_counted(
    sink: EventSink, outliers: OutlierDetector
) -> None:
    registry = CollectorRegistry()
    reports = DetectorReports(registry, sink.url, SOURCE)
    inspector = Inspector(reports, outliers=outliers)
    ordinary = Logged(_origin("req-1"), np.zeros((2, 3)))
    far = Logged(_origin("req-2"), np.array([[0.0, 0.0, 0.0], [0.0, 40.0, 0.0]]))
    await inspector.inspect_outliers([ordinary, far])
    await reports.close()
    [event] = sink.wait_for(1)
    assert event["type"] == OUTLIER_TYPE and event["id"] == "req-2" and event["source"] == SOURCE
    assert (event["inferenceservicename"], event["namespace"]) == ("iris", "default")
    assert (event["component"], event["endpoint"]) == ("predictor", "iris-predictor-00001")
    assert event["datacontenttype"] == "application/json"
    data = orjson.loads(event.data)
    assert data["is_outlier"] == [0, 1] and len(data["instance_score"]) == 2
    assert int(np.argmax(data["feature_score"][1])) == 1  # the feature that is far out
    assert reports.counts("default", "iris")["outlier"] == {"inspected": 4, "detected": 1, "failed": 0}
    labels = {"detector": "outlier", "namespace": "default", "service": "iris"}
    assert registry.get_sample_value("wharf_monitor_detected_rows_total", labels) == 1.0
    assert reports.logger.counts == {"sent": 1, "dropped": 0, "failed": 0}


async def test_adversarial_findings_are_sent_for_the_sampled_inferences_only(sink: EventSink) -> None:
    async def predict(rows: np.ndarray) -> np.ndarray:  # class 1 past 0.5: rounding moves rows near it
        p = 1 / (1 + np.exp(-40 * (rows[:, 0] - 0.5)))
        return np.stack([1 - p, p], axis=1)

    detector = AdversarialDetector(predict, (Round(1.0),), threshold=0.5)
    reports = DetectorReports(CollectorRegistry(), sink.url, SOURCE)
    inspector = Inspector(reports, adversarial=detector, sampler=Sampler(0.5, seed=3))
    twin = Sampler(0.5, seed=3)  # draws what the inspector's sampler will
    sampled = [twin.take() for _ in range(6)]
    assert 0 < sum(sampled) < 6
    logged = [Logged(_origin(f"req-{i}"), np.array([[0.52], [0.0]])) for i in range(6)]
    await inspector.inspect_adversarial(logged)
    await reports.close()
    events = sink.wait_for(sum(sampled))
    assert sorted(event["id"] for event in events) == [f"req-{i}" for i in range(6) if sampled[i]]
    assert {event["type"] for event in events} == {ADVERSARIAL_TYPE}
    data = orjson.loads(events[0].data)
    assert data["is_adversarial"] == [1, 0] and data["instance_score"][0] > 0.5
    assert reports.counts("default", "iris")["adversarial"] == {
        "inspected": 2 * sum(sampled),
        "detected": sum(sampled),
        "failed": 0,
    }


async def test_rows_that_cannot_be_scored_count_as_failed_and_without_a_reply_url_nothing_is_sent(
    outliers: OutlierDetector,
) -> None:
    async def unreachable(rows: np.ndarray) -> np.ndarray:
        raise ServerUnreachable("cannot reach http://127.0.0.1:9/")

    reports = DetectorReports(CollectorRegistry())
    inspector = Inspector(reports, outliers, AdversarialDetector(unreachable, (Round(1.0),), 0.5))
    logged = [Logged(_origin("req-1"), np.array([[0.0, 50.0, 0.0]]))]
    await inspector.inspect_adversarial(logged)
    await inspector.inspect_outliers([*logged, Logged(_origin("req-2"), np.zeros((2, 2)))])  # 2 columns, not 3
    await reports.close()
    counts = reports.counts("default", "iris")
    assert counts["adversarial"] == {"inspected": 0, "detected": 0, "failed": 1}
    assert counts["outlier"] == {"inspected": 1, "detected": 1, "failed": 2}
    assert reports.logger.counts == {"sent": 0, "dropped": 0, "failed": 0}
    assert reports.counts("default", "other") == {
        "outlier": {"inspected": 0, "detected": 0, "failed": 0},
        "adversarial": {"inspected": 0, "detected": 0, "failed": 0},
    }
