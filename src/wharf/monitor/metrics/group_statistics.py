"""Group fairness statistics over boolean arrays of the same rows. Pure functions.

`favorable` marks the rows whose outcome (the model's answer) is favorable, `truth` those whose ground truth is,
`privileged` and `unprivileged` the rows of each group. Rates are taken within a group: the selection rate is the
share of its rows with a favorable outcome, the true positive rate that share among its rows whose truth is
favorable, the false positive rate among those whose truth is not. Every difference is the unprivileged group's
figure less the privileged group's (TrustyAI's sign: negative when the unprivileged group fares worse).

- statistical parity difference (TrustyAI's SPD): selection rate difference.
- disparate impact ratio (TrustyAI's DIR): selection rate ratio.
- equal opportunity difference (Wharf's EOD): true positive rate difference.
- average odds difference (Wharf's AOD): the mean of the false and true positive rate differences.
- equalized odds difference (Wharf's EQODDS): the larger absolute difference of the two rates (fairlearn's
  `equalized_odds_difference` between two groups).

A rate over no rows (a group without rows, or without rows of the truth it needs) is undefined: nan, and so is
every figure made from it, and a ratio over a zero rate.
"""

from __future__ import annotations

import math

import numpy as np


def rate(hits: np.ndarray, among: np.ndarray) -> float:
    """The share of the rows `among` that are `hits` (nan when there are none)."""
    rows = np.count_nonzero(among)
    return np.count_nonzero(hits & among) / rows if rows else math.nan


def statistical_parity_difference(favorable: np.ndarray, privileged: np.ndarray, unprivileged: np.ndarray) -> float:
    return rate(favorable, unprivileged) - rate(favorable, privileged)


def disparate_impact_ratio(favorable: np.ndarray, privileged: np.ndarray, unprivileged: np.ndarray) -> float:
    privileged_rate = rate(favorable, privileged)
    return rate(favorable, unprivileged) / privileged_rate if privileged_rate else math.nan


def equal_opportunity_difference(
    favorable: np.ndarray, truth: np.ndarray, privileged: np.ndarray, unprivileged: np.ndarray
) -> float:
    return rate(favorable, unprivileged & truth) - rate(favorable, privileged & truth)


def false_positive_rate_difference(
    favorable: np.ndarray, truth: np.ndarray, privileged: np.ndarray, unprivileged: np.ndarray
) -> float:
    return rate(favorable, unprivileged & ~truth) - rate(favorable, privileged & ~truth)


def average_odds_difference(
    favorable: np.ndarray, truth: np.ndarray, privileged: np.ndarray, unprivileged: np.ndarray
) -> float:
    groups = (favorable, truth, privileged, unprivileged)
    return (false_positive_rate_difference(*groups) + equal_opportunity_difference(*groups)) / 2


def equalized_odds_difference(
    favorable: np.ndarray, truth: np.ndarray, privileged: np.ndarray, unprivileged: np.ndarray
) -> float:
    groups = (favorable, truth, privileged, unprivileged)
    return float(np.maximum(abs(false_positive_rate_difference(*groups)), abs(equal_opportunity_difference(*groups))))
