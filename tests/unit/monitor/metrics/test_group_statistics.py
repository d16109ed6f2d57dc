"""Group fairness statistics against a hand-computed example and against fairlearn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fairlearn import metrics as fairlearn

from wharf.monitor.metrics import group_statistics


def example() -> dict[str, np.ndarray]:
    """Gender 1 (privileged), 10 rows: 5 truly favorable, 4 of them predicted so; 5 not, 2 predicted favorable.
    Gender 0 (unprivileged), 10 rows: 4 truly favorable, 2 predicted so; 6 not, 1 predicted favorable.
    Gender 2, 5 rows, all favorable: in neither group.

    Selection rates 6/10 and 3/10: SPD -0.3, DIR 0.5. True positive rates 4/5 and 2/4: EOD -0.3. False positive
    rates 2/5 and 1/6: difference -7/30; AOD (-0.3 - 7/30) / 2 = -4/15; equalized odds max(0.3, 7/30) = 0.3."""
    gender = np.array([1] * 10 + [0] * 10 + [2] * 5)
    truth = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0] + [1, 1, 1, 1, 0, 0, 0, 0, 0, 0] + [1] * 5, dtype=bool)
    favorable = np.array([1, 1, 1, 1, 0, 1, 1, 0, 0, 0] + [1, 1, 0, 0, 1, 0, 0, 0, 0, 0] + [1] * 5, dtype=bool)
    return {"favorable": favorable, "truth": truth, "privileged": gender == 1, "unprivileged": gender == 0}


def test_hand_computed_example() -> None:
    g = example()
    groups = (g["favorable"], g["privileged"], g["unprivileged"])
    with_truth = (g["favorable"], g["truth"], g["privileged"], g["unprivileged"])
    assert group_statistics.statistical_parity_difference(*groups) == pytest.approx(-0.3)
    assert group_statistics.disparate_impact_ratio(*groups) == pytest.approx(0.5)
    assert group_statistics.equal_opportunity_difference(*with_truth) == pytest.approx(-0.3)
    assert group_statistics.false_positive_rate_difference(*with_truth) == pytest.approx(-7 / 30)
    assert group_statistics.average_odds_difference(*with_truth) == pytest.approx(-4 / 15)
    assert group_statistics.equalized_odds_difference(*with_truth) == pytest.approx(0.3)


def _random_case(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 3000
    group = rng.integers(0, 3, n)  # group 2 is in neither
    truth = rng.random(n) < np.where(group == 0, 0.35, 0.5)
    favorable = np.where(truth, rng.random(n) < np.where(group == 0, 0.6, 0.8), rng.random(n) < 0.2)
    return {
        "group": group,
        "favorable": favorable,
        "truth": truth,
        "privileged": group == 1,
        "unprivileged": group == 0,
    }


CASES = {"example": None, **{f"random {seed}": seed for seed in range(3)}}


@pytest.fixture(params=CASES.values(), ids=CASES.keys())
def case(request: pytest.FixtureRequest) -> dict[str, np.ndarray]:
    if request.param is None:
        g = example()
        g["group"] = np.where(g["privileged"], 1, np.where(g["unprivileged"], 0, 2))
        return g
    return _random_case(request.param)


def _fairlearn_inputs(g: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """fairlearn compares every group given: give it only the two groups' rows."""
    rows = g["privileged"] | g["unprivileged"]
    return {
        "y_true": g["truth"][rows].astype(int),
        "y_pred": g["favorable"][rows].astype(int),
        "sensitive_features": g["group"][rows],
    }


def test_against_fairlearn(case: dict[str, np.ndarray]) -> None:
    groups = (case["favorable"], case["privileged"], case["unprivileged"])
    with_truth = (case["favorable"], case["truth"], case["privileged"], case["unprivileged"])
    inputs = _fairlearn_inputs(case)
    spd = group_statistics.statistical_parity_difference(*groups)
    dir_ = group_statistics.disparate_impact_ratio(*groups)
    eod = group_statistics.equal_opportunity_difference(*with_truth)
    # fairlearn's differences are unsigned (largest less smallest), its ratios at most 1 (smallest over largest)
    assert abs(spd) == pytest.approx(fairlearn.demographic_parity_difference(**inputs))
    assert min(dir_, 1 / dir_) == pytest.approx(fairlearn.demographic_parity_ratio(**inputs))
    assert abs(eod) == pytest.approx(fairlearn.equal_opportunity_difference(**inputs))
    assert group_statistics.equalized_odds_difference(*with_truth) == pytest.approx(
        fairlearn.equalized_odds_difference(**inputs)
    )
    # signed rates by group, from fairlearn's MetricFrame
    frame = fairlearn.MetricFrame(
        metrics={
            "selection": fairlearn.selection_rate,
            "tpr": fairlearn.true_positive_rate,
            "fpr": fairlearn.false_positive_rate,
        },
        y_true=inputs["y_true"],
        y_pred=inputs["y_pred"],
        sensitive_features=inputs["sensitive_features"],
    ).by_group
    unprivileged, privileged = frame.loc[0], frame.loc[1]
    assert spd == pytest.approx(unprivileged["selection"] - privileged["selection"])
    assert dir_ == pytest.approx(unprivileged["selection"] / privileged["selection"])
    assert eod == pytest.approx(unprivileged["tpr"] - privileged["tpr"])
    assert group_statistics.average_odds_difference(*with_truth) == pytest.approx(
        ((unprivileged["tpr"] - privileged["tpr"]) + (unprivileged["fpr"] - privileged["fpr"])) / 2
    )


def test_undefined_figures_are_nan() -> None:
    favorable = np.array([False, False, True])
    privileged = np.array([True, True, False])
    unprivileged = np.array([False, False, True])
    nobody = np.zeros(3, dtype=bool)
    assert math.isnan(group_statistics.disparate_impact_ratio(favorable, privileged, unprivileged))
    assert math.isnan(group_statistics.statistical_parity_difference(favorable, nobody, unprivileged))
    truth = np.array([True, True, True])  # nobody without favorable ground truth: no false positive rate
    assert math.isnan(group_statistics.average_odds_difference(favorable, truth, privileged, unprivileged))
    assert math.isnan(group_statistics.equalized_odds_difference(favorable, truth, privileged, unprivileged))
