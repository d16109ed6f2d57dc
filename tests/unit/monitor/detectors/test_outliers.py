"""`OutlierDetector`: fitted on reference rows, it lets in-distribution rows through, flags far-out ones and points
at the feature that moved, by scikit-learn's own threshold rule."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from wharf.errors import InvalidInput
from wharf.monitor.detectors import OutlierDetector

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
MEANS = np.array([5.8, 3.0, 3.8, 1.2])
SCALES = np.array([0.8, 0.4, 1.8, 0.8])
METHODS = ["isolation_forest", "elliptic_envelope"]


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(MEANS, SCALES, size=(n, len(COLUMNS)))


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.DataFrame(_rows(2000, seed=0), columns=COLUMNS)


@pytest.mark.parametrize("method", METHODS)
def test_in_distribution_rows_pass_and_a_far_out_row_is_an_outlier_on_its_shifted_feature(
    reference: pd.DataFrame, method: str
) -> None:
    detector = OutlierDetector.fit(reference, method=method, contamination=0.01)  # type: ignore[arg-type]
    assert detector.columns == COLUMNS
    fresh = detector.score(_rows(1000, seed=1))
    assert fresh.is_outlier.mean() < 0.04
    far = MEANS.copy()
    far[2] += 8 * SCALES[2]  # petal_length, 8 standard deviations out
    found = detector.score(far[None, :])
    assert found.is_outlier.tolist() == [True]
    assert COLUMNS[int(np.argmax(found.feature_score[0]))] == "petal_length"
    assert found.feature_score[0, 2] == pytest.approx(8, rel=0.1)  # in reference standard deviations
    everywhere = detector.score((MEANS + 8 * SCALES)[None, :])  # far out on every feature: the estimator sees it
    assert everywhere.is_outlier.tolist() == [True] and everywhere.instance_score[0] > detector.threshold


def test_a_value_past_the_reference_range_is_an_outlier_though_the_forest_scores_it_like_the_edge(
    reference: pd.DataFrame,
) -> None:
    detector = OutlierDetector.fit(reference)
    edge, far = MEANS.copy(), MEANS.copy()
    edge[2] = reference["petal_length"].max()
    far[2] += 20 * SCALES[2]
    rows = np.vstack([edge, far])
    found = detector.score(rows)
    assert found.instance_score[0] == found.instance_score[1] < detector.threshold  # same leaf as the edge
    assert found.is_outlier.tolist() == [False, True]
    assert detector.bounds[2] == pytest.approx(6.0)  # no reference row lies 6 standard deviations out


@pytest.mark.parametrize("method", METHODS)
def test_the_threshold_is_scikit_learns_and_flags_the_contamination_share_of_the_reference(
    reference: pd.DataFrame, method: str
) -> None:
    detector = OutlierDetector.fit(reference, method=method, contamination=0.05)  # type: ignore[arg-type]
    on_reference = detector.score(reference.to_numpy())
    assert on_reference.is_outlier.mean() == pytest.approx(0.05, abs=0.005)
    rows = _rows(500, seed=2)
    assert detector.score(rows).is_outlier.tolist() == (detector.estimator.predict(rows) == -1).tolist()  # in range


def test_a_row_with_a_missing_value_is_an_outlier_and_its_event_data_is_json(reference: pd.DataFrame) -> None:
    detector = OutlierDetector.fit(reference)
    rows = np.vstack([MEANS, [np.nan, 3.0, 3.8, 1.2]])
    found = detector.score(rows)
    assert found.is_outlier.tolist() == [False, True] and found.instance_score[1] == np.inf
    data = orjson.loads(orjson.dumps(found.data()))
    assert data["is_outlier"] == [0, 1] and data["instance_score"][1] is None  # +inf is null in JSON
    assert len(data["feature_score"]) == 2 and len(data["feature_score"][0]) == 4
    assert "feature_score" not in found.rows(0, 1).data(feature_score=False)


def test_reference_rows_with_missing_values_are_left_out_and_constant_columns_score_in_their_units() -> None:
    reference = pd.DataFrame({"x": [0.0, 1.0, np.nan, 2.0, 1.5, 0.5], "flag": [1, 1, 1, 1, 1, 1]})
    detector = OutlierDetector.fit(reference)
    assert detector.score(np.array([[1.0, 3.0]])).feature_score[0, 1] == pytest.approx(2.0)


def test_bad_reference_or_rows_are_refused_naming_what_is_wrong(reference: pd.DataFrame) -> None:
    with pytest.raises(InvalidInput, match="not numeric: species"):
        OutlierDetector.fit(reference.assign(species="setosa"))
    with pytest.raises(InvalidInput, match="'lof' is not one of isolation_forest, elliptic_envelope"):
        OutlierDetector.fit(reference, method="lof")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="contamination"):
        OutlierDetector.fit(reference, contamination=0.7)
    with pytest.raises(InvalidInput, match="at least 2 reference rows"):
        OutlierDetector.fit(pd.DataFrame({"x": [1.0, np.nan]}))
    detector = OutlierDetector.fit(reference.to_numpy()[:200])
    assert detector.columns == ["input-0", "input-1", "input-2", "input-3"]
    with pytest.raises(InvalidInput, match=r"rows of 4 features \(input-0, .*\), got shape \[1, 3\]"):
        detector.score(np.zeros((1, 3)))
