"""Each drift statistic against scipy's own result on the same samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import spatial, stats

from wharf.monitor.metrics import drift_statistics

RNG = np.random.default_rng(7)
SAMPLES = {
    "normal, shifted": (RNG.normal(0, 1, 4000), RNG.normal(0.1, 1, 1500)),
    "same normal": (RNG.normal(0, 1, 4000), RNG.normal(0, 1, 1500)),
    "exponential vs normal": (RNG.exponential(1, 20_000), RNG.normal(1, 1, 800)),
    "integers with ties": (RNG.integers(0, 6, 5000).astype(float), RNG.integers(0, 7, 3000).astype(float)),
    "small": (RNG.normal(0, 1, 12), RNG.normal(1, 2, 9)),
}


@pytest.mark.parametrize("reference, current", SAMPLES.values(), ids=SAMPLES.keys())
def test_meanshift_is_welchs_t_test(reference: np.ndarray, current: np.ndarray) -> None:
    expected = stats.ttest_ind(reference, current, equal_var=False).pvalue
    assert drift_statistics.meanshift(reference, current) == pytest.approx(expected, rel=1e-12)


def test_meanshift_of_constant_samples() -> None:
    assert drift_statistics.meanshift(np.full(5, 2.0), np.full(3, 2.0)) == 1.0
    assert drift_statistics.meanshift(np.full(5, 2.0), np.full(3, 3.0)) == 0.0


@pytest.mark.parametrize("reference, current", SAMPLES.values(), ids=SAMPLES.keys())
def test_kstest_is_scipys_two_sample_test(reference: np.ndarray, current: np.ndarray) -> None:
    assert drift_statistics.kstest(reference, current) == stats.ks_2samp(reference, current).pvalue


@pytest.mark.parametrize("epsilon", [0.05, 0.01, 0.001])
@pytest.mark.parametrize("reference, current", SAMPLES.values(), ids=SAMPLES.keys())
def test_approx_ks_statistic_is_within_half_epsilon(reference: np.ndarray, current: np.ndarray, epsilon: float) -> None:
    sketch = drift_statistics.quantile_sketch(reference, epsilon)
    assert len(sketch) <= math.ceil(1 / epsilon) + 1
    approximate = drift_statistics.approx_ks_statistic(sketch, len(reference), current)
    assert abs(approximate - stats.ks_2samp(reference, current).statistic) <= epsilon / 2 + 1e-12


def test_approx_ks_statistic_is_exact_when_the_sketch_is_the_sample() -> None:
    reference, current = SAMPLES["small"]
    sketch = drift_statistics.quantile_sketch(reference, 0.01)
    assert len(sketch) == len(reference)
    assert drift_statistics.approx_ks_statistic(sketch, len(reference), current) == pytest.approx(
        stats.ks_2samp(reference, current).statistic
    )


@pytest.mark.parametrize("reference, current", SAMPLES.values(), ids=SAMPLES.keys())
def test_approxkstest_p_value_is_scipys_asymptotic_one(reference: np.ndarray, current: np.ndarray) -> None:
    statistic = drift_statistics.approx_ks_statistic(
        drift_statistics.quantile_sketch(reference, 0.001), len(reference), current
    )
    expected = stats.kstwo.sf(statistic, round(len(reference) * len(current) / (len(reference) + len(current))))
    assert drift_statistics.approxkstest(reference, current, 0.001) == pytest.approx(expected, rel=1e-12)
    # ... which is ks_2samp's asymptotic p-value wherever the statistic is exact
    exact = stats.ks_2samp(reference, current, method="asymp")
    assert drift_statistics.ks_asymptotic_pvalue(exact.statistic, len(reference), len(current)) == pytest.approx(
        exact.pvalue, rel=1e-12
    )


def _histograms(reference: np.ndarray, current: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy's histograms on the reference's quantile edges, the outer bins stretched to hold every value."""
    inner = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    low, high = min(reference.min(), current.min()) - 1, max(reference.max(), current.max()) + 1
    edges = np.concatenate([[low], inner, [high]])
    # np.histogram's bins are closed on the left like `binned`'s, except the last, closed on both sides
    return np.histogram(reference, edges)[0], np.histogram(current, edges)[0]


@pytest.mark.parametrize("bins", [4, 10])
@pytest.mark.parametrize("reference, current", SAMPLES.values(), ids=SAMPLES.keys())
def test_binned_counts_are_numpys_histograms(reference: np.ndarray, current: np.ndarray, bins: int) -> None:
    ours = drift_statistics.binned(reference, current, bins)
    theirs = _histograms(reference, current, bins)
    assert [list(counts) for counts in ours] == [list(counts) for counts in theirs]
    assert sum(ours[0]) == len(reference) and sum(ours[1]) == len(current)


@pytest.mark.parametrize("reference, current", SAMPLES.values(), ids=SAMPLES.keys())
def test_jensenshannon_is_scipys_distance(reference: np.ndarray, current: np.ndarray) -> None:
    expected_counts = _histograms(reference, current, 10)
    expected = spatial.distance.jensenshannon(*expected_counts, base=2)
    assert drift_statistics.jensenshannon(*drift_statistics.binned(reference, current, 10)) == pytest.approx(expected)


def test_jensenshannon_bounds() -> None:
    assert drift_statistics.jensenshannon(np.array([5, 5]), np.array([1, 1])) == pytest.approx(0.0)
    assert drift_statistics.jensenshannon(np.array([5, 0]), np.array([0, 3])) == pytest.approx(1.0)


def test_psi_is_the_stability_index_of_the_proportions() -> None:
    reference_counts, current_counts = np.array([50, 30, 20]), np.array([20, 30, 50])
    r, c = reference_counts / 100, current_counts / 100
    expected = np.sum((c - r) * np.log(c / r))  # 2 * 0.3 * ln(2.5)
    assert drift_statistics.psi(reference_counts, current_counts) == pytest.approx(expected)
    assert expected == pytest.approx(0.6 * math.log(2.5))
    # and with scipy's relative entropy both ways, on numpy's histograms of samples
    reference, current = SAMPLES["normal, shifted"]
    a, b = (counts / counts.sum() for counts in _histograms(reference, current, 10))
    assert drift_statistics.psi(*drift_statistics.binned(reference, current, 10)) == pytest.approx(
        stats.entropy(a, b) + stats.entropy(b, a)
    )


def test_psi_counts_an_empty_bin_as_a_small_proportion() -> None:
    value = drift_statistics.psi(np.array([50, 50]), np.array([100, 0]))
    r, c = np.array([0.5, 0.5]), np.array([1.0, drift_statistics.PSI_EMPTY_BIN])
    assert math.isfinite(value)
    assert value == pytest.approx(np.sum((c - r) * np.log(c / r)))


def test_chisquare_is_scipys_contingency_test() -> None:
    reference = pd.Series(RNG.choice(["red", "green", "blue"], 3000, p=[0.5, 0.3, 0.2]))
    current = pd.Series(RNG.choice(["red", "green", "blue", "black"], 900, p=[0.4, 0.3, 0.2, 0.1]))
    table = pd.crosstab(
        pd.concat([reference, current], ignore_index=True),
        np.repeat(["reference", "current"], [len(reference), len(current)]),
    )
    expected = stats.chi2_contingency(table.to_numpy().T).pvalue
    assert drift_statistics.chisquare(*drift_statistics.categories(reference, current)) == pytest.approx(expected)


def test_categories_align_the_values_of_both_samples() -> None:
    reference, current = drift_statistics.categories(pd.Series(["a", "b", "b"]), pd.Series(["c", "b"]))
    # one (reference, current) pair of counts per value: a, b, c
    assert sorted(zip(reference, current, strict=True)) == [(0, 1), (1, 0), (2, 1)]


def test_chisquare_of_a_single_category_shows_no_drift() -> None:
    assert drift_statistics.chisquare(np.array([5]), np.array([7])) == 1.0
