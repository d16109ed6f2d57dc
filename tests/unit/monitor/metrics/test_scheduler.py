"""The scheduler: rounds at its interval (an injected sleep), alert states (an injected clock), TrustyAI's gauges
in the rendered Prometheus text, requests kept across schedulers on the same database, and a round's cost over
100,000 rows."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.monitor.metrics.conftest import drift_body, fairness_body, sample
from tests.unit.monitor.metrics.fakes import FrameRows, StoredModel
from wharf.errors import InvalidInput, NotFound
from wharf.monitor.data import ground_truth
from wharf.monitor.metrics.scheduler import Scheduler
from wharf.monitor.metrics.settings import MetricsSettings

pytestmark = pytest.mark.anyio

SPD = fairness_body(requestName="gender parity")
KSTEST = drift_body(fitColumns=["x1", "x2"], batchSize=1500)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "monitor.db"


def scheduler_of(rows: FrameRows, database: Path, clock: Clock | None = None, **kwargs: Any) -> Scheduler:
    return Scheduler(rows, database, CollectorRegistry(), clock=clock or Clock(), **kwargs)


def samples(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The rendered Prometheus text, read back: per metric, each sample's labels and value."""
    text = generate_latest(registry).decode()
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


async def test_a_round_exports_trustyais_gauges(rows: FrameRows, database: Path) -> None:
    registry = CollectorRegistry()
    scheduler = Scheduler(rows, database, registry, clock=Clock())
    spd = scheduler.register("spd", SPD)
    ks = scheduler.register("kstest", KSTEST)
    assert samples(registry) == {}  # nothing computed yet
    await scheduler.recompute()
    exported = samples(registry)
    assert exported["trustyai_spd"] == [
        (
            {
                "model": "credit",
                "metricName": "SPD",
                "request": str(spd.id),
                "requestName": "gender parity",
                "batch_size": "25",
                "protected": "gender",
                "privileged": "1",
                "unprivileged": "0",
                "outcome": "approved",
                "favorable_value": "1",
            },
            pytest.approx(-0.3),
        )
    ]
    ks_labels = {"model": "iris", "metricName": "KSTEST", "request": str(ks.id), "batch_size": "1500"}
    assert [labels for labels, _ in exported["trustyai_kstest"]] == [
        ks_labels | {"subcategory": "x1"},
        ks_labels | {"subcategory": "x2"},
    ]
    assert exported["trustyai_kstest"][1][1] < 0.05  # x2 drifted
    assert "\ntrustyai_spd{" in generate_latest(registry).decode()


async def test_string_values_are_labelled_as_json(rows: FrameRows, database: Path) -> None:
    frame = rows.models["credit"].inferences
    frame["gender"] = frame["gender"].map({0: "female", 1: "male", 2: "other"})
    registry = CollectorRegistry()
    scheduler = Scheduler(rows, database, registry, clock=Clock())
    scheduler.register("dir", SPD | {"privilegedAttribute": "male", "unprivilegedAttribute": ["female", "other"]})
    await scheduler.recompute()
    [(labels, _)] = samples(registry)["trustyai_dir"]
    assert (labels["privileged"], labels["unprivileged"]) == ('"male"', '["female","other"]')


async def test_alert_state_and_since_when(rows: FrameRows, database: Path) -> None:
    clock = Clock(1000.0)
    registry = CollectorRegistry()
    scheduler = Scheduler(rows, database, registry, clock=clock)
    spd = scheduler.register("spd", SPD)
    [(_, status)] = scheduler.snapshot()
    assert status.alert.since is None and status.result is None
    await scheduler.recompute()
    clock.now = 1005.0
    await scheduler.recompute()  # still outside: since stays
    [(_, status)] = scheduler.snapshot()
    assert (status.alert.outside_bounds, status.alert.since, status.computed_at) == (True, 1000.0, 1005.0)
    alert = {"model": "credit", "metricName": "SPD", "request": str(spd.id), "requestName": "gender parity"}
    assert samples(registry)["wharf_monitor_metric_outside_bounds"] == [(alert, 1.0)]
    assert samples(registry)["wharf_monitor_metric_alert_since_seconds"] == [(alert, 1000.0)]

    frame = rows.models["credit"].inferences  # the unprivileged group now approved as often (6 of 10)
    frame.loc[frame.index[-15:-9], "approved"] = 1
    clock.now = 1010.0
    await scheduler.recompute()
    [(_, status)] = scheduler.snapshot()
    assert (status.alert.outside_bounds, status.alert.since) == (False, 1010.0)
    assert status.result is not None and status.result.value == pytest.approx(0.0)
    assert samples(registry)["wharf_monitor_metric_outside_bounds"] == [(alert, 0.0)]


async def test_a_failing_request_keeps_its_error_and_the_others_go_on(rows: FrameRows, database: Path) -> None:
    clock = Clock(50.0)
    registry = CollectorRegistry()
    scheduler = Scheduler(rows, database, registry, clock=clock)
    spd = scheduler.register("spd", SPD)
    scheduler.register("kstest", KSTEST)
    await scheduler.recompute()
    rows.models["credit"].inferences = pd.DataFrame()  # nothing to compute on
    clock.now = 60.0
    await scheduler.recompute()
    statuses = {scheduled.id: status for scheduled, status in scheduler.snapshot()}
    assert statuses[spd.id].error == "model 'credit' has no inferences yet"
    assert statuses[spd.id].alert.since == 50.0  # the alert stands as it was
    exported = samples(registry)
    assert "trustyai_spd" not in exported and len(exported["trustyai_kstest"]) == 2
    assert len(exported["wharf_monitor_metric_outside_bounds"]) == 2


async def test_registering_checks_the_request_but_needs_no_inferences(rows: FrameRows, database: Path) -> None:
    scheduler = scheduler_of(rows, database)
    rows.models["credit"].inferences = pd.DataFrame()
    scheduler.register("spd", SPD)  # inferences may come later
    with pytest.raises(InvalidInput, match="outcomeName: model 'credit' has no output 'y'"):
        scheduler.register("spd", SPD | {"outcomeName": "y"})
    with pytest.raises(NotFound, match="VALIDATION"):
        scheduler.register("kstest", KSTEST | {"referenceTag": "VALIDATION"})
    with pytest.raises(InvalidInput, match="fitColumns: model 'iris' has no column 'x9'"):
        scheduler.register("meanshift", KSTEST | {"fitColumns": ["x9"]})
    with pytest.raises(NotFound, match="no model 'other'"):
        scheduler.register("dir", SPD | {"modelId": "other"})
    assert len(scheduler.snapshot()) == 1


async def test_listing_deleting_and_counts(rows: FrameRows, database: Path) -> None:
    registry = CollectorRegistry()
    scheduler = Scheduler(rows, database, registry, clock=Clock())
    spd = scheduler.register("spd", SPD)
    dir_ = scheduler.register("dir", SPD)
    ks = scheduler.register("kstest", KSTEST)
    assert [s.id for s, _ in scheduler.listed(name="spd")] == [spd.id]
    assert [s.id for s, _ in scheduler.listed(kind="fairness")] == [spd.id, dir_.id]
    assert [s.id for s, _ in scheduler.listed(kind="drift")] == [ks.id]
    assert scheduler.counts("credit") == {"SPD": 1, "DIR": 1} and scheduler.counts("iris") == {"KSTEST": 1}
    with pytest.raises(InvalidInput, match="type: no kind of metric 'bias'"):
        scheduler.listed(kind="bias")
    with pytest.raises(NotFound, match=f"requestId: no scheduled request {spd.id} of metric dir"):
        scheduler.delete(spd.id, "dir")
    await scheduler.recompute()
    scheduler.delete(spd.id, "spd")
    with pytest.raises(NotFound, match=f"no scheduled request {spd.id}"):
        scheduler.delete(spd.id)
    exported = samples(registry)
    assert "trustyai_spd" not in exported and len(exported["trustyai_dir"]) == 1
    assert [s.id for s, _ in scheduler.snapshot()] == [dir_.id, ks.id]


async def test_requests_survive_a_new_scheduler_on_the_same_database(
    rows: FrameRows, database: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = scheduler_of(rows, database, Clock(10.0))
    spd = first.register("spd", SPD)
    ks = first.register("approxkstest", KSTEST | {"epsilon": 0.01})
    gone = first.register("dir", SPD)
    first.delete(gone.id)
    with sqlite3.connect(database) as connection:  # a request of a metric this Wharf does not know
        connection.execute(
            "INSERT INTO scheduled_metrics VALUES ('7d1c2a4e-0000-4000-8000-000000000000', 'FMMD', '{}', 1)"
        )
    registry = CollectorRegistry()
    second = Scheduler(rows, database, registry, clock=Clock(20.0))
    assert [(s.id, s.metric.name, s.request, s.registered) for s, _ in second.snapshot()] == [
        (spd.id, "SPD", spd.request, 10.0),
        (ks.id, "APPROXKSTEST", ks.request, 10.0),
    ]
    assert "scheduled metric 7d1c2a4e-0000-4000-8000-000000000000 not restored: no metric 'FMMD'" in caplog.text
    await second.recompute()
    assert samples(registry)["trustyai_spd"][0][0]["request"] == str(spd.id)


async def test_rounds_follow_the_interval_until_stopped(rows: FrameRows, database: Path) -> None:
    delays: list[float] = []
    three_rounds = asyncio.Event()

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 3:
            three_rounds.set()
        await asyncio.sleep(0)

    clock = Clock()
    scheduler = scheduler_of(rows, database, clock, settings=MetricsSettings(interval_s=7.5), sleep=sleep)
    scheduler.register("spd", SPD)
    scheduler.start()
    await asyncio.wait_for(three_rounds.wait(), timeout=30)
    await scheduler.stop()
    count = len(delays)
    assert delays[:3] == [7.5, 7.5, 7.5]
    [(_, status)] = scheduler.snapshot()
    assert status.result is not None and status.computed_at == clock.now
    await asyncio.sleep(0.05)
    assert len(delays) == count  # stopped


async def test_stop_waits_for_the_rows_a_round_is_reading(rows: FrameRows, database: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    class SlowRows(FrameRows):
        def inferences(self, model: str, last: int | None = None) -> pd.DataFrame:
            entered.set()
            release.wait(10)
            return super().inferences(model, last)

    scheduler = scheduler_of(SlowRows(**rows.models), database)
    scheduler.register("spd", SPD)
    scheduler.start()
    assert await asyncio.to_thread(entered.wait, 10)
    stopping = asyncio.create_task(scheduler.stop())
    await asyncio.sleep(0.1)
    assert not stopping.done()  # the store must not close under the round
    release.set()
    await asyncio.wait_for(stopping, timeout=10)


def test_the_interval_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MetricsSettings().interval_s == 5.0
    monkeypatch.setenv("WHARF_MONITOR_METRICS_INTERVAL_S", "30")
    assert MetricsSettings().interval_s == 30.0


@pytest.fixture
def large() -> FrameRows:
    """A model with 100,000 reference rows and 100,000 logged rows (with ground truth)."""
    rng = np.random.default_rng(3)
    n = 100_000
    inferences = sample(rng, n, shift=0.05)
    inferences["gender"] = rng.integers(0, 2, n)
    inferences[ground_truth("label")] = rng.integers(0, 3, n)
    reference = sample(rng, n)
    reference["gender"] = rng.integers(0, 2, n)
    return FrameRows(
        big=StoredModel(["x1", "x2", "x3", "color", "gender"], ["label"], {"TRAINING": reference}, inferences)
    )


@pytest.mark.parametrize(
    "metric, body",
    [
        (name, {"modelId": "big", "referenceTag": "TRAINING", "batchSize": 100_000})
        for name in ("meanshift", "kstest", "approxkstest", "jensenshannon", "psi", "chisquare")
    ]
    + [
        (
            name,
            {
                "modelId": "big",
                "protectedAttribute": "gender",
                "privilegedAttribute": 1,
                "unprivilegedAttribute": 0,
                "outcomeName": "label",
                "favorableOutcome": 2,
                "batchSize": 100_000,
            },
        )
        for name in ("spd", "dir", "eod", "aod", "eqodds")
    ],
)
async def test_a_recompute_over_100000_rows_takes_well_under_a_second(
    metric: str, body: dict[str, Any], large: FrameRows, database: Path
) -> None:
    scheduler = scheduler_of(large, database)
    scheduler.register(metric, body)
    started = time.perf_counter()
    await scheduler.recompute()
    took = time.perf_counter() - started
    [(_, status)] = scheduler.snapshot()
    assert status.error is None and status.result is not None
    assert took < 1.0, f"{metric} took {took:.3f} s"
