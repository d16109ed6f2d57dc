"""Drift metrics over stored rows: which columns they compare, what they answer, what they refuse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.unit.monitor.metrics.conftest import drift_body
from tests.unit.monitor.metrics.fakes import FrameRows, StoredModel
from wharf.errors import InvalidInput, NotFound
from wharf.monitor.metrics.registry import compute

P_VALUE_TESTS = ["meanshift", "kstest", "approxkstest"]
DISTANCES = ["jensenshannon", "psi"]


@pytest.mark.parametrize("metric", P_VALUE_TESTS + DISTANCES)
def test_the_shifted_feature_drifts_and_no_other(metric: str, drifting: FrameRows) -> None:
    answer = compute(metric, drift_body(batchSize=1500), drifting)
    numeric = {"x1", "x2", "x3", "label"}
    assert numeric <= set(answer["namedValues"])
    drifted = {column for column, outside in answer["thresholds"]["namedOutsideBounds"].items() if outside}
    assert drifted & numeric == {"x2"}
    assert answer["thresholds"]["outsideBounds"] is True


@pytest.mark.parametrize("metric", P_VALUE_TESTS + DISTANCES + ["chisquare"])
def test_in_distribution_inferences_show_no_drift(metric: str, drifting: FrameRows) -> None:
    answer = compute(metric, drift_body(batchSize=500), drifting)  # the latest 500 rows are in distribution
    assert not any(answer["thresholds"]["namedOutsideBounds"].values()), answer["specificDefinition"]
    assert answer["thresholds"]["outsideBounds"] is False


def test_chisquare_compares_categorical_columns(drifting: FrameRows) -> None:
    answer = compute("chisquare", drift_body(batchSize=1500), drifting)
    assert set(answer["namedValues"]) == {"color", "label"}  # strings and integers, not floats
    assert answer["thresholds"]["namedOutsideBounds"] == {"color": True, "label": False}


def test_binned_distances_bin_categorical_columns_by_value(drifting: FrameRows) -> None:
    answer = compute("psi", drift_body(batchSize=1500, fitColumns=["color"]), drifting)
    reference = drifting.reference("iris", "TRAINING")["color"].value_counts(normalize=True)
    current = drifting.inferences("iris", last=1500)["color"].value_counts(normalize=True)
    expected = sum((current[c] - reference[c]) * np.log(current[c] / reference[c]) for c in reference.index)
    assert answer["namedValues"] == {"color": pytest.approx(expected)}


def test_named_values_are_scipys_on_the_stored_samples(drifting: FrameRows) -> None:
    reference = drifting.reference("iris", "TRAINING")
    current = drifting.inferences("iris", last=700)
    ks = compute("kstest", drift_body(batchSize=700, fitColumns=["x1", "x2"]), drifting)
    assert ks["namedValues"] == {c: stats.ks_2samp(reference[c], current[c]).pvalue for c in ("x1", "x2")}
    meanshift = compute("meanshift", drift_body(batchSize=700, fitColumns=["x3"]), drifting)
    assert meanshift["namedValues"]["x3"] == pytest.approx(
        stats.ttest_ind(reference["x3"], current["x3"], equal_var=False).pvalue
    )
    chisquare = compute("chisquare", drift_body(batchSize=700, fitColumns=["color"]), drifting)
    table = pd.concat([reference["color"].value_counts(), current["color"].value_counts()], axis=1).fillna(0)
    assert chisquare["namedValues"]["color"] == pytest.approx(stats.chi2_contingency(table.to_numpy().T).pvalue)


def test_the_answer_has_trustyais_shape(drifting: FrameRows) -> None:
    answer = compute("kstest", drift_body(fitColumns=["x2"]), drifting)
    assert set(answer) == {
        "timestamp",
        "type",
        "name",
        "id",
        "value",
        "namedValues",
        "specificDefinition",
        "thresholds",
    }
    assert answer["type"] == "metric" and answer["name"] == "KSTEST" and answer["value"] is None
    assert answer["thresholds"] == {
        "lowerBound": 0.05,
        "upperBound": 1.0,
        "outsideBounds": True,
        "namedOutsideBounds": {"x2": True},
    }
    assert "Column x2: p = " in answer["specificDefinition"] and "[DRIFT]" in answer["specificDefinition"]


@pytest.mark.parametrize(
    "metric, bounds", [("meanshift", [0.01, 1.0]), ("chisquare", [0.01, 1.0]), ("jensenshannon", [0.0, 0.01])]
)
def test_threshold_delta_sets_the_bounds(metric: str, bounds: list[float], drifting: FrameRows) -> None:
    thresholds = compute(metric, drift_body(thresholdDelta=0.01), drifting)["thresholds"]
    assert [thresholds["lowerBound"], thresholds["upperBound"]] == bounds


@pytest.mark.parametrize(
    "metric, delta", [("meanshift", 0.05), ("approxkstest", 0.05), ("jensenshannon", 0.1), ("psi", 0.25)]
)
def test_default_thresholds(metric: str, delta: float, drifting: FrameRows) -> None:
    thresholds = compute(metric, drift_body(), drifting)["thresholds"]
    assert delta in (thresholds["lowerBound"], thresholds["upperBound"])


def test_fit_columns_are_compared_once_each_in_order(drifting: FrameRows) -> None:
    answer = compute("meanshift", drift_body(fitColumns=["x3", "x1", "x3"]), drifting)
    assert list(answer["namedValues"]) == ["x3", "x1"]


@pytest.mark.parametrize("metric", P_VALUE_TESTS + DISTANCES + ["chisquare"])
def test_too_few_inferences_show_no_drift(metric: str, drifting: FrameRows) -> None:
    drifting.models["iris"].inferences = drifting.models["iris"].inferences.tail(1)
    answer = compute(metric, drift_body(), drifting)
    assert set(answer["namedValues"].values()) == {0.0 if metric in DISTANCES else 1.0}
    drifting.models["iris"].inferences = pd.DataFrame()  # nothing logged yet
    assert compute(metric, drift_body(), drifting)["thresholds"]["outsideBounds"] is False


def test_missing_values_are_left_out(drifting: FrameRows) -> None:
    model = drifting.models["iris"]
    with_gaps = model.inferences.copy()
    with_gaps.loc[with_gaps.index[::3], "x1"] = np.nan
    model.inferences = with_gaps
    answer = compute("kstest", drift_body(fitColumns=["x1"], batchSize=1500), drifting)
    expected = stats.ks_2samp(model.references["TRAINING"]["x1"], with_gaps["x1"].dropna()).pvalue
    assert answer["namedValues"]["x1"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "fields, error, words",
    [
        ({"fitColumns": ["x9"]}, InvalidInput, ["fitColumns", "'x9'", "x1, x2, x3, color, label"]),
        ({"fitColumns": ["color"]}, InvalidInput, ["fitColumns", "'color'", "not numeric"]),
        ({"referenceTag": "VALIDATION"}, NotFound, ["VALIDATION"]),
        ({"modelId": "nope"}, NotFound, ["nope"]),
        ({"batchSize": 0}, InvalidInput, ["batchSize"]),
        ({"thresholdDelta": -1}, InvalidInput, ["thresholdDelta"]),
        ({"fitColumns": "x1"}, InvalidInput, ["fitColumns"]),
        ({"referenceTag": None}, InvalidInput, ["referenceTag"]),
        ({"epsilon": 0.1}, InvalidInput, ["epsilon", "Extra inputs"]),  # only approxkstest has one
        ({"bins": 5}, InvalidInput, ["bins"]),  # only the binned distances have them
    ],
)
def test_refusals_name_the_problem(
    fields: dict[str, object], error: type[Exception], words: list[str], drifting: FrameRows
) -> None:
    with pytest.raises(error) as raised:
        compute("kstest", drift_body(**fields), drifting)
    assert all(word in str(raised.value) for word in words), str(raised.value)


def test_a_named_column_must_be_in_the_reference(drifting: FrameRows) -> None:
    model = drifting.models["iris"]
    model.references["TRAINING"] = model.references["TRAINING"].drop(columns=["label"])
    with pytest.raises(InvalidInput, match="'label' is not in the reference data 'TRAINING'"):
        compute("kstest", drift_body(fitColumns=["label"]), drifting)


def test_a_reference_without_columns_to_compare_is_refused() -> None:
    rows = FrameRows(
        words=StoredModel(["text"], ["tag"], {"TRAINING": pd.DataFrame({"text": ["a", "b"], "tag": ["x", "y"]})})
    )
    with pytest.raises(InvalidInput, match="no numeric column to compare; name the columns in fitColumns"):
        compute("kstest", {"modelId": "words", "referenceTag": "TRAINING"}, rows)


def test_approxkstest_and_binned_parameters(drifting: FrameRows) -> None:
    coarse = compute("approxkstest", drift_body(epsilon=0.2, fitColumns=["x2"], batchSize=1500), drifting)
    fine = compute("approxkstest", drift_body(epsilon=0.0001, fitColumns=["x2"], batchSize=1500), drifting)
    exact = compute("kstest", drift_body(fitColumns=["x2"], batchSize=1500), drifting)
    assert fine["namedValues"]["x2"] == pytest.approx(exact["namedValues"]["x2"], rel=0.5)
    assert coarse["namedValues"] != fine["namedValues"]
    two = compute("jensenshannon", drift_body(bins=2, fitColumns=["x1"]), drifting)
    assert two["namedValues"] != compute("jensenshannon", drift_body(fitColumns=["x1"]), drifting)["namedValues"]
