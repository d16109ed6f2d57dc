"""The console's history: live figures and one sample per interval from gateway snapshots and the autoscaler's
gauges, a bounded ring per series, stale and surplus series dropped."""

from __future__ import annotations

import pytest

from wharf.control.history import REVISION, History, scaling_states
from wharf.control.metrics import ControlMetrics
from wharf.gateway.stats import RevisionStats


def load(answered: int, taken_at: float, requests: int = 0, errors: int = 0, in_flight: int = 0) -> RevisionStats:
    return RevisionStats(
        in_flight=in_flight,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        p50_ms=5.0 if requests else None,
        p99_ms=50.0 if requests else None,
        queued=1,
        answered=answered,
        taken_at=taken_at,
    )


def test_live_requests_per_second_follow_the_gateways_counts_on_its_clock() -> None:
    history, metrics = History(), ControlMetrics()
    history.observe(1000.0, {"r1": load(0, 50.0)}, metrics)
    assert history.live()["r1"]["rps"] == 0.0  # one snapshot says no rate yet
    history.observe(1001.0, {"r1": load(20, 52.0, requests=20, errors=2, in_flight=3)}, metrics)
    live = history.live()["r1"]
    assert live["rps"] == pytest.approx(10.0)  # 20 answered over the gateway's 2 s, whatever the daemon's clock did
    assert (live["requests"], live["errors"], live["errorRatio"]) == (20, 2, 0.1)
    assert (live["p50Ms"], live["p99Ms"], live["inFlight"], live["queued"]) == (5.0, 50.0, 3, 1)
    history.observe(1002.0, {"r1": load(5, 53.0)}, metrics)  # the gateway counts afresh
    assert history.live()["r1"]["rps"] == 0.0


def test_live_rates_cover_the_last_ten_seconds_only() -> None:
    history, metrics = History(), ControlMetrics()
    for second in range(31):  # 100/s for 20 s, then nothing
        history.observe(float(second), {"r1": load(100 * min(second, 20), float(second))}, metrics)
        if second == 25:
            assert history.live()["r1"]["rps"] == pytest.approx(50.0)  # 500 in the last 10 s
    assert history.live()["r1"]["rps"] == 0.0


def test_one_sample_per_interval_with_the_rate_since_the_sample_before() -> None:
    history, metrics = History(interval_s=10.0), ControlMetrics()
    for second in range(0, 31):
        history.observe(1000.0 + second, {"r1": load(7 * second, float(second))}, metrics)
    series = history.series([REVISION + "r1"])[REVISION + "r1"]
    assert series["t"] == [1000.0, 1010.0, 1020.0, 1030.0]
    assert series["rps"] == [None, pytest.approx(7.0), pytest.approx(7.0), pytest.approx(7.0)]
    assert history.series(prefixes=[REVISION], since=1015.0)[REVISION + "r1"]["t"] == [1020.0, 1030.0]
    assert history.series(["revision/other"]) == {}


def test_the_autoscalers_state_is_read_from_its_gauges_and_sampled_with_the_traffic() -> None:
    metrics = ControlMetrics()
    metrics.desired.labels("r1").set(3)
    metrics.ready.labels("r1").set(2)
    metrics.panic.labels("r1").set(1)
    metrics.cold_start.labels("r1").observe(1.5)
    metrics.cold_start.labels("r1").observe(0.5)
    metrics.desired.labels("zero").set(0)
    assert scaling_states(metrics) == {
        "r1": {"desired": 3, "ready": 2, "panic": 1, "coldStarts": 2, "coldStartSeconds": 2.0},
        "zero": {"desired": 0},
    }
    history = History()
    history.observe(1000.0, {}, metrics)  # a revision scaled to zero has no gateway figures: it is sampled still
    zero = history.series([REVISION + "zero"])[REVISION + "zero"]
    assert zero["desired"] == [0.0] and zero["rps"] == [0.0] and zero["p99Ms"] == [None]
    assert history.live()["r1"]["coldStartSeconds"] == 2.0


def test_a_series_keeps_an_hour_of_samples() -> None:
    history = History(interval_s=10.0, keep_s=60.0)
    for i in range(10):
        history.record("metric/m", float(i * 10), {"value": float(i)})
    series = history.series(["metric/m"])["metric/m"]
    assert series["value"] == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]  # 60 s / 10 s


def test_a_series_whose_fields_change_starts_afresh() -> None:
    history = History()
    history.record("metric/m", 1.0, {"a": 0.5, "b": None})
    history.record("metric/m", 2.0, {"a": 0.4, "b": 0.9})
    assert history.series(["metric/m"])["metric/m"] == {"t": [1.0, 2.0], "a": [0.5, 0.4], "b": [None, 0.9]}
    history.record("metric/m", 3.0, {"a": 0.1, "c": 0.2})
    assert history.series(["metric/m"])["metric/m"] == {"t": [3.0], "a": [0.1], "c": [0.2]}


def test_series_nobody_writes_go_after_the_hour_and_the_stalest_beyond_the_cap() -> None:
    history = History(keep_s=100.0, max_series=3)
    history.record("old", 0.0, {"v": 1.0})
    for i, key in enumerate(("a", "b", "c")):
        history.record(key, 50.0 + i, {"v": 1.0})
    assert set(history.series(prefixes=[""])) == {"a", "b", "c"}  # "old" was the stalest beyond three
    history.record("d", 200.0, {"v": 1.0})
    assert set(history.series(prefixes=[""])) == {"d"}  # the others were not written for 100 s
