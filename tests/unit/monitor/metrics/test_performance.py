"""Performance metrics over labelled rows: accuracy, MAE and RMSE against scikit-learn's on the same rows, bounds,
what the answer says, refusals, and the scheduled gauges `wharf_accuracy`, `wharf_mae` and `wharf_rmse`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error

from tests.unit.monitor.conftest import OpenStore, exchange, numbers
from tests.unit.monitor.metrics.fakes import FrameRows, StoredModel
from tests.unit.monitor.metrics.test_scheduler import Clock, samples
from wharf.errors import InvalidInput, NotFound
from wharf.monitor.data import ground_truth
from wharf.monitor.metrics.registry import compute
from wharf.monitor.metrics.scheduler import Scheduler
from wharf.monitor.payloads import Table

TRUTH = ground_truth("approved")


def accuracy_body(**fields: object) -> dict[str, object]:
    """Accuracy of output `approved` over the latest 25 rows of model "credit" (the fairness example)."""
    return {"modelId": "credit", "outcomeName": "approved", "batchSize": 25, "thresholdDelta": 0.8, **fields}


def error_body(**fields: object) -> dict[str, object]:
    """An error metric of output `price` over the latest 150 labelled rows of model "house"."""
    return {"modelId": "house", "outcomeName": "price", "batchSize": 150, "thresholdDelta": 5.0, **fields}


@pytest.fixture
def house(rng: np.random.Generator) -> FrameRows:
    """Model "house", a regression: inputs rooms and area, output price; 200 logged rows, the first 180 labelled
    with the true price (the output off by a normal error of 4), the latest 20 not yet."""
    n = 200
    area = rng.uniform(40.0, 200.0, n)
    price = 2.0 * area + rng.normal(0.0, 4.0, n)
    truth = np.where(np.arange(n) < 180, 2.0 * area, np.nan)
    frame = pd.DataFrame({"rooms": rng.integers(1, 6, n), "area": area, "price": price, ground_truth("price"): truth})
    return FrameRows(house=StoredModel(inputs=["rooms", "area"], outputs=["price"], inferences=frame))


@pytest.fixture
def both(credit: FrameRows, house: FrameRows) -> FrameRows:
    return FrameRows(**credit.models, **house.models)


def labelled_tail(rows: FrameRows, model: str, output: str, last: int) -> tuple[np.ndarray, np.ndarray]:
    """The outputs and ground truths of the latest `last` labelled rows, as scikit-learn gets them."""
    frame = rows.labelled(model, last)
    return frame[ground_truth(output)].to_numpy(), frame[output].to_numpy()


@pytest.mark.parametrize("batch", [25, 60, 5000])
def test_accuracy_is_scikit_learns(batch: int, credit: FrameRows) -> None:
    answer = compute("accuracy", accuracy_body(batchSize=batch), credit)
    assert answer["value"] == pytest.approx(accuracy_score(*labelled_tail(credit, "credit", "approved", batch)))
    assert answer["name"] == "ACCURACY" and answer["type"] == "metric" and answer["namedValues"] is None


def test_accuracy_of_the_fairness_example(credit: FrameRows) -> None:
    answer = compute("accuracy", accuracy_body(), credit)
    assert answer["value"] == pytest.approx(19 / 25)
    assert answer["thresholds"] == {"lowerBound": 0.8, "upperBound": 1.0, "outsideBounds": True}
    assert answer["specificDefinition"] == (
        "The accuracy of 0.7600 means that output 'approved' equals its ground truth in 19 of the latest 25 "
        "inferences of model 'credit' with ground truth of 'approved'."
    )
    within = compute("accuracy", accuracy_body(thresholdDelta=0.75), credit)["thresholds"]
    assert within == {"lowerBound": 0.75, "upperBound": 1.0, "outsideBounds": False}


def test_accuracy_compares_strings(credit: FrameRows) -> None:
    frame = credit.models["credit"].inferences
    for column in ("approved", TRUTH):
        frame[column] = frame[column].map({0: "no", 1: "yes"})
    answer = compute("accuracy", accuracy_body(batchSize=60), credit)
    assert answer["value"] == pytest.approx(accuracy_score(*labelled_tail(credit, "credit", "approved", 60)))


@pytest.mark.parametrize("batch", [10, 150, 5000])
def test_mae_and_rmse_are_scikit_learns(batch: int, house: FrameRows) -> None:
    truth, predicted = labelled_tail(house, "house", "price", batch)
    mae = compute("mae", error_body(batchSize=batch), house)
    rmse = compute("rmse", error_body(batchSize=batch), house)
    assert mae["value"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert rmse["value"] == pytest.approx(math.sqrt(mean_squared_error(truth, predicted)))
    assert rmse["value"] >= mae["value"] > 0


def test_only_labelled_rows_count(house: FrameRows) -> None:
    # the latest 20 rows have no ground truth: the latest 150 labelled rows end at row 180
    answer = compute("mae", error_body(), house)
    frame = house.models["house"].inferences.iloc[30:180]
    assert answer["value"] == pytest.approx(mean_absolute_error(frame[ground_truth("price")], frame["price"]))
    assert (
        "over the latest 150 inferences of model 'house' with ground truth of 'price'."
        in (answer["specificDefinition"])
    )
    everything = compute("rmse", error_body(batchSize=5000), house)["specificDefinition"]
    assert "the latest 180 inferences" in everything


def test_error_bounds(house: FrameRows) -> None:
    mae = compute("mae", error_body(), house)
    assert mae["thresholds"] == {"lowerBound": 0.0, "upperBound": 5.0, "outsideBounds": False}
    assert compute("mae", error_body(thresholdDelta=1.0), house)["thresholds"]["outsideBounds"] is True
    assert compute("rmse", error_body(thresholdDelta=0), house)["thresholds"]["upperBound"] == 0.0


@pytest.mark.parametrize(
    "metric, fields, words",
    [
        ("accuracy", {"outcomeName": "label"}, ["outcomeName", "no output 'label'", "approved"]),
        ("accuracy", {"outcomeName": "gender"}, ["outcomeName", "no output 'gender'"]),
        ("mae", {"outcomeName": ""}, ["outcomeName"]),
        ("accuracy", {"thresholdDelta": 1.5}, ["thresholdDelta", "1.5 is above 1"]),
        ("rmse", {"thresholdDelta": -1}, ["thresholdDelta", "greater than or equal to 0"]),
        ("accuracy", {"since": 1_700_000_000}, ["since", "Extra inputs are not permitted"]),
        ("accuracy", {"metricName": "MAE"}, ["metricName", "'MAE'", "ACCURACY"]),
    ],
)
def test_refusals_name_the_problem(metric: str, fields: dict[str, object], words: list[str], credit: FrameRows) -> None:
    with pytest.raises(InvalidInput) as raised:
        compute(metric, accuracy_body(**fields), credit)
    assert raised.value.http_status == 400
    assert all(word in str(raised.value) for word in words), str(raised.value)


@pytest.mark.parametrize("field", ["outcomeName", "thresholdDelta"])
def test_required_fields(field: str, credit: FrameRows) -> None:
    body = accuracy_body()
    del body[field]
    with pytest.raises(InvalidInput, match=f"{field}: Field required"):
        compute("accuracy", body, credit)


@pytest.mark.parametrize("metric", ["mae", "rmse"])
def test_errors_need_numbers(metric: str, credit: FrameRows) -> None:
    frame = credit.models["credit"].inferences
    frame[TRUTH] = frame[TRUTH].map({0: "no", 1: "yes"})
    with pytest.raises(InvalidInput, match=f"outcomeName: the ground truth of 'approved' .* not numeric .*{metric}"):
        compute(metric, accuracy_body(), credit)
    frame["approved"] = frame["approved"].map({0: "no", 1: "yes"})
    with pytest.raises(InvalidInput, match="outcomeName: output 'approved' of model 'credit' is not numeric"):
        compute(metric, accuracy_body(), credit)


def test_no_labelled_rows_yet(credit: FrameRows) -> None:
    credit.models["credit"].inferences[TRUTH] = float("nan")
    with pytest.raises(NotFound) as raised:
        compute("accuracy", accuracy_body(), credit)
    assert raised.value.http_status == 404
    assert str(raised.value) == "model 'credit' has no labelled inferences with ground truth of output 'approved' yet"
    credit.models["credit"].inferences = pd.DataFrame()
    with pytest.raises(NotFound, match="no labelled inferences"):
        compute("accuracy", accuracy_body(), credit)


def test_an_unknown_model(credit: FrameRows) -> None:
    with pytest.raises(NotFound, match="no model 'nope'"):
        compute("accuracy", accuracy_body(modelId="nope"), credit)


@pytest.mark.anyio
async def test_scheduled_metrics_are_wharfs_gauges(both: FrameRows, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    scheduler = Scheduler(both, tmp_path / "monitor.db", registry, clock=Clock())
    accuracy = scheduler.register("accuracy", accuracy_body(requestName="approvals"))
    mae = scheduler.register("mae", error_body())
    rmse = scheduler.register("rmse", error_body(thresholdDelta=1.0))
    with pytest.raises(InvalidInput, match="outcomeName"):
        scheduler.register("accuracy", accuracy_body(outcomeName="income"))
    assert [s.metric.name for s, _ in scheduler.listed(kind="performance")] == ["ACCURACY", "MAE", "RMSE"]

    await scheduler.recompute()
    exported = samples(registry)
    assert exported["wharf_accuracy"] == [
        (
            {
                "model": "credit",
                "metricName": "ACCURACY",
                "request": str(accuracy.id),
                "requestName": "approvals",
                "batch_size": "25",
            },
            pytest.approx(19 / 25),
        )
    ]
    truth, predicted = labelled_tail(both, "house", "price", 150)
    assert exported["wharf_mae"] == [
        (
            {"model": "house", "metricName": "MAE", "request": str(mae.id), "batch_size": "150"},
            pytest.approx(mean_absolute_error(truth, predicted)),
        )
    ]
    assert exported["wharf_rmse"][0][1] == pytest.approx(math.sqrt(mean_squared_error(truth, predicted)))
    outside = {labels["request"]: value for labels, value in exported["wharf_monitor_metric_outside_bounds"]}
    assert outside == {str(accuracy.id): 1.0, str(mae.id): 0.0, str(rmse.id): 1.0}


@pytest.mark.anyio
async def test_the_gauge_follows_labels_as_they_arrive(credit: FrameRows, tmp_path: Path) -> None:
    """Registered before any ground truth: no sample (the status says why) until labels come; then each round
    gives the accuracy of the latest labelled rows, the series Prometheus keeps."""
    frame = credit.models["credit"].inferences
    truth = frame[TRUTH].copy()
    frame[TRUTH] = float("nan")
    registry = CollectorRegistry()
    scheduler = Scheduler(credit, tmp_path / "monitor.db", registry, clock=Clock())
    scheduler.register("accuracy", accuracy_body())
    await scheduler.recompute()
    [(_, status)] = scheduler.snapshot()
    assert status.error is not None and "no labelled inferences" in status.error
    assert "wharf_accuracy" not in samples(registry)

    frame.loc[:109, TRUTH] = truth[:110]  # the older 100 (all right) and 10 of the example (7 right)
    await scheduler.recompute()
    assert samples(registry)["wharf_accuracy"][0][1] == pytest.approx(
        accuracy_score(truth[85:110], frame["approved"][85:110])
    )
    frame[TRUTH] = truth
    await scheduler.recompute()
    assert samples(registry)["wharf_accuracy"][0][1] == pytest.approx(19 / 25)


@pytest.mark.anyio
async def test_over_the_monitors_store(open_store: OpenStore) -> None:
    """Labels sent by request id to the real store: only the labelled rows count, INT64 classes compared."""
    store = open_store()
    store.add_exchange(exchange("r1", numbers("a", rows=3), numbers("y", rows=3, datatype="INT64")))  # y: 0, 1, 2
    store.add_exchange(exchange("r2", numbers("a", rows=2), numbers("y", rows=2, datatype="INT64")))  # not labelled
    await store.flush()
    body = {"modelId": "iris", "outcomeName": "y", "thresholdDelta": 0.5}
    with pytest.raises(NotFound, match="no labelled inferences with ground truth of output 'y'"):
        compute("accuracy", body, store)
    await store.add_labels("iris", [("r1", None, numbers("y", rows=3, start=1, datatype="INT64"))])  # 1, 2, 3
    answer = compute("accuracy", body, store)
    assert answer["value"] == 0.0 and "in 0 of the latest 3 inferences" in answer["specificDefinition"]
    await store.add_labels("iris", [("r1", None, Table(("y",), ("INT64",), (np.array([0, 1, 0]),), 3, False))])
    assert compute("accuracy", body, store)["value"] == pytest.approx(accuracy_score([0, 1, 0], [0, 1, 2]))
    assert compute("mae", body, store)["value"] == pytest.approx(mean_absolute_error([0, 1, 0], [0, 1, 2]))
