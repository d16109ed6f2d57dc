"""Drift statistics of one column: a reference sample against a current sample, as numpy arrays without missing
values. Pure functions; the statistics are scipy's.

- `meanshift`: the p-value of Welch's t-test that the two means are equal (`scipy.stats.ttest_ind`,
  `equal_var=False`). TrustyAI's meanshift takes the same t statistic but reads its p-value at n1 + n2 - 2 degrees
  of freedom rather than Welch-Satterthwaite's; the two agree closely once both samples have more than a few dozen
  values. Two constant samples give 1.0 where they are equal and 0.0 where they are not.
- `kstest`: the p-value of the two-sample Kolmogorov-Smirnov test (`scipy.stats.ks_2samp`, two-sided).
- `approxkstest`: the same test with the reference summarised as a quantile sketch: its values at the ranks
  0, 1/k, ..., 1 (k = ceil(1/epsilon), the sample itself when it is smaller). Between two sketch values the
  reference's empirical CDF lies within one rank step, so estimating it at the middle of that step puts the KS
  statistic within 1/(2k) <= epsilon/2 of the exact one (TrustyAI's Greenwald-Khanna sketch promises 6 epsilon).
  The p-value is scipy's asymptotic two-sided distribution (`scipy.stats.kstwo` at n = round(n1 n2 / (n1 + n2)),
  as `ks_2samp(method="asymp")` reads it). A sketch is at most k + 1 values however large the reference.
- `jensenshannon`: the Jensen-Shannon distance, base 2 (0: same distribution, 1: disjoint), of two histograms
  (`scipy.spatial.distance.jensenshannon`).
- `psi`: the population stability index of two histograms, sum((c - r) ln(c / r)) over the bins' proportions
  (`scipy.special.rel_entr` both ways); an empty bin counts as proportion 1e-4 so that the index stays finite.
- `chisquare`: the p-value of the chi-square test of independence of sample and category
  (`scipy.stats.chi2_contingency` on the 2 x categories table of counts).

Histograms (`binned`) of a numeric column use the reference's quantiles as bin edges (open-ended first and last
bins, so every current value falls in one); those of a categorical column (`categories`) count each value seen in
either sample. Cost: a sort of each sample at most, O(n log n).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import spatial, special, stats

#: The proportion an empty bin counts as in the population stability index.
PSI_EMPTY_BIN = 1e-4


def meanshift(reference: np.ndarray, current: np.ndarray) -> float:
    if np.ptp(reference) == 0 and np.ptp(current) == 0:  # scipy answers nan (0/0) for two constant samples
        return 1.0 if reference[0] == current[0] else 0.0
    return float(stats.ttest_ind(reference, current, equal_var=False).pvalue)


def kstest(reference: np.ndarray, current: np.ndarray) -> float:
    return float(stats.ks_2samp(reference, current).pvalue)


def quantile_sketch(values: np.ndarray, epsilon: float) -> np.ndarray:
    """The values at the ranks 0, 1/k, ..., 1 (k = ceil(1/epsilon)); all of them, sorted, when fewer."""
    steps = math.ceil(1 / epsilon)
    if len(values) <= steps + 1:
        return np.sort(values)
    return np.quantile(values, np.linspace(0.0, 1.0, steps + 1), method="inverted_cdf")


def approx_ks_statistic(sketch: np.ndarray, reference_size: int, current: np.ndarray) -> float:
    """The KS statistic of the reference summarised by `sketch` (of `reference_size` values) against `current`."""
    current = np.sort(current)
    points = np.concatenate([sketch, current])
    exact = len(sketch) == reference_size  # the sketch is the sample itself
    distance = 0.0
    for side in ("right", "left"):  # the CDFs at each point, and just before it
        below = np.searchsorted(sketch, points, side=side)
        if exact:
            estimate = below / reference_size
        else:  # between sketch values j-1 and j the CDF lies in [(j-1)/k, j/k): estimate its middle
            steps = len(sketch) - 1
            estimate = np.clip((below - 0.5) / steps, 0.0, 1.0)
        observed = np.searchsorted(current, points, side=side) / len(current)
        distance = max(distance, float(np.max(np.abs(estimate - observed))))
    return distance


def ks_asymptotic_pvalue(statistic: float, n1: int, n2: int) -> float:
    return float(stats.kstwo.sf(statistic, round(n1 * n2 / (n1 + n2))))


def approxkstest(reference: np.ndarray, current: np.ndarray, epsilon: float) -> float:
    statistic = approx_ks_statistic(quantile_sketch(reference, epsilon), len(reference), current)
    return ks_asymptotic_pvalue(statistic, len(reference), len(current))


def binned(reference: np.ndarray, current: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of each sample in `bins` bins cut at the reference's quantiles (fewer where quantiles coincide)."""
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    return (
        np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1),
        np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1),
    )


def categories(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Counts of each value seen in either sample, in the same order for both."""
    counts = pd.concat(
        [reference.value_counts(), current.value_counts()], axis=1, keys=["reference", "current"]
    ).fillna(0)
    return counts["reference"].to_numpy(), counts["current"].to_numpy()


def jensenshannon(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    return float(spatial.distance.jensenshannon(reference_counts, current_counts, base=2))


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    reference = np.maximum(reference_counts / reference_counts.sum(), PSI_EMPTY_BIN)
    current = np.maximum(current_counts / current_counts.sum(), PSI_EMPTY_BIN)
    return float(np.sum(special.rel_entr(current, reference) + special.rel_entr(reference, current)))


def chisquare(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    return float(stats.chi2_contingency(np.vstack([reference_counts, current_counts])).pvalue)
