"""Drift metrics over a model's stored rows: each column of the reference data (`Rows.reference` with the body's
`referenceTag`) against the same column of the latest `batchSize` inferences (`Rows.inferences`).

The columns are those the body names (`fitColumns`), or else every column of the reference that the statistic
compares: numeric columns for meanshift, kstest and approxkstest; categorical columns (not floats) for chisquare;
all columns for the binned distances, which bin a numeric column at the reference's quantiles and a categorical
one by its values. A named column must be one of the model's and be in the reference data; a numeric statistic
refuses a column whose reference values are not numeric. Missing values are dropped; while either sample of a
column has fewer than two values, the column shows no drift (p-value 1, distance 0), as TrustyAI's does.

The p-value tests (meanshift, kstest, approxkstest, chisquare) flag a column when p <= thresholdDelta (default
0.05, TrustyAI's); their bounds are [thresholdDelta, 1]. The distances flag a column when the distance exceeds
thresholdDelta (Jensen-Shannon: 0.1; PSI: 0.25, the usual "significant shift" mark); their bounds are
[0, thresholdDelta]. The result is outside its bounds when any column is. Cost: reading both samples, then one
statistic per column (see `drift_statistics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from wharf.errors import InvalidInput
from wharf.monitor.data import Rows
from wharf.monitor.metrics import columns, drift_statistics
from wharf.monitor.metrics.requests import ApproxKSTestRequest, BinnedDriftRequest, DriftRequest
from wharf.monitor.metrics.results import Bounds, Result


class Compares(Enum):
    """The columns a statistic compares by default, and what it refuses."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    ALL = "all"


@dataclass(frozen=True)
class DriftStatistic:
    """A per-column drift statistic: a p-value (`test`) or a distance."""

    name: str
    summary: str
    compares: Compares
    test: bool
    default_delta: float
    request: type[DriftRequest]
    of: Callable[[pd.Series, pd.Series, Any], float]  # reference, current, request of type `request`

    def bounds(self, delta: float) -> Bounds:
        return Bounds(delta, 1.0) if self.test else Bounds(0.0, delta)

    def drifted(self, value: float, delta: float) -> bool:
        return value <= delta if self.test else value > delta

    @property
    def no_drift(self) -> float:
        return 1.0 if self.test else 0.0


def compared_columns(statistic: DriftStatistic, request: DriftRequest, rows: Rows) -> tuple[pd.DataFrame, list[str]]:
    """The reference data and the columns to compare; InvalidInput or NotFound naming what is wrong."""
    model = request.model_id
    names = columns.known(rows, model)
    for name in request.fit_columns or ():
        columns.require(name, names, "fitColumns", model)
    reference = rows.reference(model, request.reference_tag)
    if request.fit_columns is None:
        chosen = [name for name in names if name in reference and _compares(statistic, reference[name])]
        if not chosen:
            raise InvalidInput(
                f"referenceTag: the reference data {request.reference_tag!r} of model {model!r} has no "
                f"{statistic.compares.value} column to compare; name the columns in fitColumns"
            )
        return reference, chosen
    for name in request.fit_columns:
        if name not in reference:
            raise InvalidInput(
                f"fitColumns: column {name!r} is not in the reference data {request.reference_tag!r} of model {model!r}"
            )
        if statistic.compares is Compares.NUMERIC and not columns.is_numeric(reference[name]):
            raise InvalidInput(
                f"fitColumns: column {name!r} is not numeric; {statistic.name.lower()} compares numeric columns "
                "(chisquare compares categorical ones)"
            )
    return reference, list(dict.fromkeys(request.fit_columns))


def check(statistic: DriftStatistic, request: DriftRequest, rows: Rows) -> None:
    """InvalidInput or NotFound unless the model, the reference data and the columns to compare exist."""
    compared_columns(statistic, request, rows)


def _compares(statistic: DriftStatistic, column: pd.Series) -> bool:
    if statistic.compares is Compares.NUMERIC:
        return columns.is_numeric(column)
    if statistic.compares is Compares.CATEGORICAL:
        return columns.is_categorical(column)
    return True


def compute(statistic: DriftStatistic, request: DriftRequest, rows: Rows) -> Result:
    """`statistic` for `request`, parsed by `registry.Metric.parse` (so its thresholdDelta is filled in)."""
    reference, compared = compared_columns(statistic, request, rows)
    current = rows.inferences(request.model_id, last=request.batch_size)
    delta = request.threshold_delta
    values: dict[str, float] = {}
    for name in compared:
        old = reference[name].dropna()
        new = current[name].dropna() if name in current else pd.Series(dtype=old.dtype)
        if statistic.compares is Compares.NUMERIC:
            old, new = columns.numbers(old), columns.numbers(new)
        values[name] = statistic.of(old, new, request) if min(len(old), len(new)) >= 2 else statistic.no_drift
    drifted = {name: statistic.drifted(value, delta) for name, value in values.items()}
    return Result(
        name=statistic.name,
        bounds=statistic.bounds(delta),
        outside_bounds=any(drifted.values()),
        definition=_definition(statistic, delta, values, drifted),
        named_values=values,
        named_outside_bounds=drifted,
    )


def _definition(statistic: DriftStatistic, delta: float, values: dict[str, float], drifted: dict[str, bool]) -> str:
    rule = f"p <= {delta:g}" if statistic.test else f"the distance exceeds {delta:g}"
    lines = [f"{statistic.summary} A column drifts when {rule}."]
    label = "p" if statistic.test else "distance"
    lines += [
        f"  - Column {name}: {label} = {value:.6g}{' [DRIFT]' if drifted[name] else ''}"
        for name, value in values.items()
    ]
    return "\n".join(lines)


def _histograms(reference: pd.Series, current: pd.Series, request: BinnedDriftRequest) -> tuple[np.ndarray, np.ndarray]:
    if columns.is_numeric(reference):
        return drift_statistics.binned(
            columns.numbers(reference).to_numpy(float), columns.numbers(current).to_numpy(float), request.bins
        )
    return drift_statistics.categories(reference, current)


def _approxkstest(reference: pd.Series, current: pd.Series, request: ApproxKSTestRequest) -> float:
    return drift_statistics.approxkstest(reference.to_numpy(float), current.to_numpy(float), request.epsilon)


STATISTICS = (
    DriftStatistic(
        "MEANSHIFT",
        "Meanshift gives, per numeric column, the p-value of Welch's t-test that the current data has the mean of "
        "the reference data.",
        Compares.NUMERIC,
        test=True,
        default_delta=0.05,
        request=DriftRequest,
        of=lambda old, new, _: drift_statistics.meanshift(old.to_numpy(float), new.to_numpy(float)),
    ),
    DriftStatistic(
        "KSTEST",
        "KSTest gives, per numeric column, the p-value of the two-sample Kolmogorov-Smirnov test that the current "
        "data comes from the distribution of the reference data.",
        Compares.NUMERIC,
        test=True,
        default_delta=0.05,
        request=DriftRequest,
        of=lambda old, new, _: drift_statistics.kstest(old.to_numpy(float), new.to_numpy(float)),
    ),
    DriftStatistic(
        "APPROXKSTEST",
        "ApproxKSTest gives, per numeric column, the p-value of the two-sample Kolmogorov-Smirnov test with the "
        "reference data summarised as a quantile sketch, its statistic within epsilon/2 of the exact one.",
        Compares.NUMERIC,
        test=True,
        default_delta=0.05,
        request=ApproxKSTestRequest,
        of=_approxkstest,
    ),
    DriftStatistic(
        "JENSENSHANNON",
        "JensenShannon gives, per column, the Jensen-Shannon distance (base 2: 0 for the same distribution, 1 for "
        "disjoint ones) between the histograms of the current and the reference data.",
        Compares.ALL,
        test=False,
        default_delta=0.1,
        request=BinnedDriftRequest,
        of=lambda old, new, request: drift_statistics.jensenshannon(*_histograms(old, new, request)),
    ),
    DriftStatistic(
        "PSI",
        "PSI gives, per column, the population stability index between the histograms of the current and the "
        "reference data (under 0.1: stable; 0.1 to 0.25: some shift; above 0.25: a significant shift).",
        Compares.ALL,
        test=False,
        default_delta=0.25,
        request=BinnedDriftRequest,
        of=lambda old, new, request: drift_statistics.psi(*_histograms(old, new, request)),
    ),
    DriftStatistic(
        "CHISQUARE",
        "ChiSquare gives, per categorical column, the p-value of the chi-square test that the current data has the "
        "proportions of each value that the reference data has.",
        Compares.CATEGORICAL,
        test=True,
        default_delta=0.05,
        request=DriftRequest,
        of=lambda old, new, _: drift_statistics.chisquare(*drift_statistics.categories(old, new)),
    ),
)
