"""Group fairness metrics over stored rows: the hand-computed example end to end, values, bounds and refusals."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.unit.monitor.metrics.conftest import fairness_body
from tests.unit.monitor.metrics.fakes import FrameRows
from wharf.errors import InvalidInput, NotFound
from wharf.monitor.data import ground_truth
from wharf.monitor.metrics.registry import compute


EXPECTED = {"spd": -0.3, "dir": 0.5, "eod": -0.3, "aod": -4 / 15, "eqodds": 0.3}


@pytest.mark.parametrize("metric, value", EXPECTED.items())
def test_the_hand_computed_example(metric: str, value: float, credit: FrameRows) -> None:
    answer = compute(metric, fairness_body(), credit)
    assert answer["value"] == pytest.approx(value)
    assert answer["name"] == metric.upper() and answer["namedValues"] is None
    assert answer["thresholds"]["outsideBounds"] is True


@pytest.mark.parametrize(
    "metric, bounds",
    [("spd", [-0.1, 0.1]), ("dir", [0.8, 1.2]), ("eod", [-0.1, 0.1]), ("aod", [-0.1, 0.1]), ("eqodds", [0.0, 0.1])],
)
def test_default_bounds(metric: str, bounds: list[float], credit: FrameRows) -> None:
    thresholds = compute(metric, fairness_body(), credit)["thresholds"]
    assert [thresholds["lowerBound"], thresholds["upperBound"]] == pytest.approx(bounds)


def test_threshold_delta_widens_the_bounds(credit: FrameRows) -> None:
    spd = compute("spd", fairness_body(thresholdDelta=0.35), credit)["thresholds"]
    assert spd == {"lowerBound": -0.35, "upperBound": 0.35, "outsideBounds": False}
    dir_ = compute("dir", fairness_body(thresholdDelta=0.5), credit)["thresholds"]
    assert dir_ == {"lowerBound": 0.5, "upperBound": 1.5, "outsideBounds": False}


def test_specific_definitions_say_what_the_value_means(credit: FrameRows) -> None:
    spd = compute("spd", fairness_body(), credit)["specificDefinition"]
    assert spd == (
        "The SPD of -0.3000 means that rows with gender = 0 (unprivileged) got approved = 1 30.00 percentage points "
        "less often than rows with gender = 1 (privileged)."
    )
    dir_ = compute("dir", fairness_body(), credit)["specificDefinition"]
    assert "0.5000 times as often as rows with gender = 1" in dir_


def test_only_the_latest_batch_counts(credit: FrameRows) -> None:
    # the 100 older rows (gender 0, all approved) join the unprivileged group: 103 of 110 approved
    assert compute("spd", fairness_body(batchSize=125), credit)["value"] == pytest.approx(103 / 110 - 0.6)
    default = fairness_body()
    del default["batchSize"]  # TrustyAI's default, 5000: every row
    assert compute("spd", default, credit)["value"] == pytest.approx(103 / 110 - 0.6)


def test_trustyais_typed_values_and_wharfs_value_lists(credit: FrameRows) -> None:
    typed = fairness_body(
        privilegedAttribute={"type": "INT32", "value": 1}, favorableOutcome={"type": "INT32", "value": 1}
    )
    assert compute("spd", typed, credit)["value"] == pytest.approx(-0.3)
    # unprivileged: genders 0 and 2, 8 of 15 approved
    answer = compute("spd", fairness_body(unprivilegedAttribute=[0, 2]), credit)
    assert answer["value"] == pytest.approx(8 / 15 - 0.6)
    assert "gender in [0, 2] (unprivileged)" in answer["specificDefinition"]


def test_string_valued_columns(credit: FrameRows) -> None:
    frame = credit.models["credit"].inferences
    frame["gender"] = frame["gender"].map({0: "female", 1: "male", 2: "other"})
    frame["approved"] = frame["approved"].map({0: "no", 1: "yes"})
    frame[ground_truth("approved")] = frame[ground_truth("approved")].map({0: "no", 1: "yes"})
    strings = fairness_body(privilegedAttribute="male", unprivilegedAttribute="female", favorableOutcome="yes")
    for metric, value in EXPECTED.items():
        assert compute(metric, strings, credit)["value"] == pytest.approx(value)


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"protectedAttribute": "age"}, ["protectedAttribute", "no input 'age'", "gender, income"]),
        ({"protectedAttribute": "approved"}, ["protectedAttribute", "no input 'approved'"]),
        ({"outcomeName": "income"}, ["outcomeName", "no output 'income'", "approved"]),
        ({"favorableOutcome": "yes"}, ["favorableOutcome", "\"yes\" is not a value of the numeric column 'approved'"]),
        ({"privilegedAttribute": True}, ["privilegedAttribute", "true is not a value of the numeric column 'gender'"]),
        ({"privilegedAttribute": {"nested": 1}}, ["privilegedAttribute", "expected a value"]),
        ({"unprivilegedAttribute": []}, ["unprivilegedAttribute", "expected a value"]),
        ({"privilegedAttribute": 7}, ["SPD is undefined", "privileged: 0 rows", "unprivileged: 10 rows, 3 favorable"]),
        ({"metricName": "DIR"}, ["metricName", "'DIR'", "SPD"]),
        ({"protectedAttribute": None}, ["protectedAttribute"]),
        ({"unknown": 1}, ["unknown", "Extra inputs are not permitted"]),
    ],
)
def test_refusals_name_the_problem(fields: dict[str, object], words: list[str], credit: FrameRows) -> None:
    with pytest.raises(InvalidInput) as raised:
        compute("spd", fairness_body(**fields), credit)
    assert all(word in str(raised.value) for word in words), str(raised.value)


def test_a_missing_field_is_named(credit: FrameRows) -> None:
    incomplete = fairness_body()
    del incomplete["outcomeName"]
    with pytest.raises(InvalidInput, match="outcomeName: Field required"):
        compute("spd", incomplete, credit)


def test_dir_without_favorable_privileged_rows_is_undefined(credit: FrameRows) -> None:
    frame = credit.models["credit"].inferences
    frame.loc[frame["gender"] == 1, "approved"] = 0
    with pytest.raises(InvalidInput, match="DIR is undefined on the latest 25 inferences of model 'credit'"):
        compute("dir", fairness_body(), credit)


def test_metrics_of_ground_truth_need_labelled_rows(credit: FrameRows) -> None:
    frame = credit.models["credit"].inferences
    frame[ground_truth("approved")] = float("nan")
    with pytest.raises(NotFound, match="model 'credit' has no labelled inferences yet"):
        compute("eod", fairness_body(), credit)
    assert compute("spd", fairness_body(), credit)["value"] == pytest.approx(-0.3)  # needs none
    frame.loc[frame.index[-25:-10], ground_truth("approved")] = 1  # the privileged: all truly favorable
    with pytest.raises(InvalidInput, match="AOD is undefined .* privileged: 10 rows, 6 favorable, 10 with favorable"):
        compute("aod", fairness_body(), credit)


def test_no_inferences_yet(credit: FrameRows) -> None:
    credit.models["credit"].inferences = pd.DataFrame()
    with pytest.raises(NotFound, match="model 'credit' has no inferences yet"):
        compute("spd", fairness_body(), credit)


def test_an_unknown_model(credit: FrameRows) -> None:
    with pytest.raises(NotFound, match="no model 'nope'"):
        compute("dir", fairness_body(modelId="nope"), credit)
