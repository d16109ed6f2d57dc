"""Performance metrics (Wharf's): a model's output (`outcomeName`) against its ground truth over the model's latest
`batchSize` labelled inferences (`Rows.labelled`; the labels arrive later by request id, see `wharf.monitor.api`).

- ACCURACY (classification): the share of rows whose output equals its ground truth, any values compared as they
  are (numbers, booleans, strings); bounds [thresholdDelta, 1], so it is outside them when it falls below.
- MAE and RMSE (regression): the mean absolute error and the root mean squared error of a numeric output; bounds
  [0, thresholdDelta], so each is outside them when it rises above.

The body must give `thresholdDelta` (no bound suits every model); accuracy's must be at most 1. Rows whose output or
ground truth of the outcome is missing (labels of other outputs only) are left out, and the answer's
`specificDefinition` says how many rows were compared. Accuracy over time is the series of its scheduled gauge,
`wharf_accuracy`, in Prometheus. Cost: reading the rows, then one vectorised comparison over them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wharf.errors import InvalidInput, NotFound
from wharf.monitor.data import Rows, ground_truth
from wharf.monitor.metrics import columns
from wharf.monitor.metrics.requests import PerformanceRequest
from wharf.monitor.metrics.results import Bounds, Result


@dataclass(frozen=True)
class PerformanceStatistic:
    name: str
    summary: str
    #: An error of a numeric output, bounded above by thresholdDelta; else (classification) a share of rows in
    #: [0, 1], bounded below by it.
    regression: bool
    of: Callable[[pd.Series, pd.Series], float]  # the outputs, their ground truths
    #: What a value says, given it, the outcome and which rows were compared.
    meaning: Callable[[float, str, str, int], str]

    def bounds(self, delta: float) -> Bounds:
        return Bounds(0.0, delta) if self.regression else Bounds(delta, 1.0)


def check(statistic: PerformanceStatistic, request: PerformanceRequest, rows: Rows) -> None:
    """InvalidInput or NotFound unless the model has the outcome output and the bounds can hold."""
    model = request.model_id
    columns.require_outcome(rows, model, request.outcome_name)
    if not statistic.regression and request.threshold_delta > 1:
        raise InvalidInput(
            f"thresholdDelta: {request.threshold_delta:g} is above 1; it is the lowest {statistic.name.lower()} "
            "accepted, a share of rows"
        )


def compute(statistic: PerformanceStatistic, request: PerformanceRequest, rows: Rows) -> Result:
    """`statistic` for `request`, parsed by `registry.Metric.parse`."""
    check(statistic, request, rows)
    model, outcome = request.model_id, request.outcome_name
    truth = ground_truth(outcome)
    labelled = rows.labelled(model, last=request.batch_size)
    pairs = labelled[[outcome, truth]].dropna() if truth in labelled else labelled.iloc[:0]
    if pairs.empty:
        raise NotFound(f"model {model!r} has no labelled inferences with ground truth of output {outcome!r} yet")
    if statistic.regression:
        for column, what in (
            (pairs[outcome], f"output {outcome!r}"),
            (pairs[truth], f"the ground truth of {outcome!r}"),
        ):
            if not columns.is_numeric(column):
                raise InvalidInput(
                    f"outcomeName: {what} of model {model!r} is not numeric ({column.dtype}); "
                    f"{statistic.name.lower()} compares numbers (accuracy compares any values)"
                )
    value = statistic.of(pairs[outcome], pairs[truth])
    bounds = statistic.bounds(request.threshold_delta)
    which = f"the latest {len(pairs)} inferences of model {model!r} with ground truth of {outcome!r}"
    return Result.single(statistic.name, bounds, value, statistic.meaning(value, outcome, which, len(pairs)))


def _errors(outputs: pd.Series, truths: pd.Series) -> np.ndarray:
    return outputs.to_numpy(float) - truths.to_numpy(float)


def _accuracy(value: float, outcome: str, which: str, count: int) -> str:
    return (
        f"The accuracy of {value:.4f} means that output {outcome!r} equals its ground truth in {round(value * count)} "
        f"of {which}."
    )


def _mae(value: float, outcome: str, which: str, _: int) -> str:
    return (
        f"The MAE of {value:.6g} means that output {outcome!r} is {value:.6g} away from its ground truth on average "
        f"over {which}."
    )


def _rmse(value: float, outcome: str, which: str, _: int) -> str:
    return (
        f"The RMSE of {value:.6g} is the square root of the mean squared difference between output {outcome!r} and "
        f"its ground truth over {which}; it weighs large errors more than the MAE does."
    )


STATISTICS = (
    PerformanceStatistic(
        "ACCURACY",
        "Accuracy (Wharf's) gives the share of the latest labelled inferences whose output equals its ground truth "
        "(classification); it is outside its bounds below thresholdDelta.",
        regression=False,
        of=lambda outputs, truths: float(outputs.eq(truths).mean()),
        meaning=_accuracy,
    ),
    PerformanceStatistic(
        "MAE",
        "Mean Absolute Error (MAE, Wharf's) gives the mean of the absolute differences between a numeric output and "
        "its ground truth over the latest labelled inferences (regression); it is outside its bounds above "
        "thresholdDelta.",
        regression=True,
        of=lambda outputs, truths: float(np.mean(np.abs(_errors(outputs, truths)))),
        meaning=_mae,
    ),
    PerformanceStatistic(
        "RMSE",
        "Root Mean Squared Error (RMSE, Wharf's) gives the square root of the mean squared difference between a "
        "numeric output and its ground truth over the latest labelled inferences (regression); it is outside its "
        "bounds above thresholdDelta.",
        regression=True,
        of=lambda outputs, truths: float(np.sqrt(np.mean(_errors(outputs, truths) ** 2))),
        meaning=_rmse,
    ),
)
