"""Group fairness metrics over a model's latest `batchSize` inferences (`Rows.inferences`), or for the metrics
that need ground truth (EOD, AOD, EQODDS: Wharf's) over its latest labelled ones (`Rows.labelled`).

The body names the protected input (`protectedAttribute`), the values of its privileged and unprivileged groups,
the outcome (`outcomeName`, an output) and its favorable value(s); a row's ground truth is favorable when its
`ground_truth(outcome)` column holds a favorable value. A value must suit its column: numbers for a numeric
column, booleans for a boolean one. The statistics are in `group_statistics`; where one is undefined on the rows
read (a group without rows, without favorable ground truth, ...), the answer is InvalidInput with the counts that
show why.

Bounds: SPD, EOD and AOD [-thresholdDelta, thresholdDelta] (default 0.1, TrustyAI's for SPD); DIR
[1 - thresholdDelta, 1 + thresholdDelta] (default 0.2: TrustyAI's [0.8, 1.2]); EQODDS [0, thresholdDelta]
(default 0.1). Cost: reading the rows, then a few vectorised comparisons over them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wharf.errors import InvalidInput, NotFound
from wharf.monitor.data import Rows, ground_truth
from wharf.monitor.metrics import columns, group_statistics
from wharf.monitor.metrics.requests import GroupRequest, Scalar, values_of
from wharf.monitor.metrics.results import Bounds, Result


@dataclass(frozen=True)
class Groups:
    """The rows read, as boolean arrays: which have a favorable outcome, a favorable ground truth (None when the
    metric reads no ground truth), and which belong to each group."""

    favorable: np.ndarray
    truth: np.ndarray | None
    privileged: np.ndarray
    unprivileged: np.ndarray

    def counts(self) -> str:
        parts = []
        for group, rows in (("privileged", self.privileged), ("unprivileged", self.unprivileged)):
            part = f"{group}: {np.count_nonzero(rows)} rows, {np.count_nonzero(rows & self.favorable)} favorable"
            if self.truth is not None:
                part += f", {np.count_nonzero(rows & self.truth)} with favorable ground truth"
                part += f", {np.count_nonzero(rows & ~self.truth)} without"
            parts.append(part)
        return "; ".join(parts)


@dataclass(frozen=True)
class GroupStatistic:
    name: str
    summary: str
    needs_truth: bool
    default_delta: float
    bounds: Callable[[float], Bounds]
    of: Callable[[Groups], float]
    #: What a value says, given it and the phrases naming the privileged group ("gender = 1 (privileged)"), the
    #: unprivileged one and the outcome ("approved = 1").
    meaning: Callable[[float, str, str, str], str]


def check(request: GroupRequest, rows: Rows) -> None:
    """InvalidInput or NotFound unless the model has the protected input and the outcome output."""
    model = request.model_id
    columns.require(request.protected_attribute, rows.input_names(model), "protectedAttribute", model, "input")
    columns.require_outcome(rows, model, request.outcome_name)


def compute(statistic: GroupStatistic, request: GroupRequest, rows: Rows) -> Result:
    """`statistic` for `request`, parsed by `registry.Metric.parse` (so its thresholdDelta is filled in)."""
    check(request, rows)
    model, last = request.model_id, request.batch_size
    frame = rows.labelled(model, last=last) if statistic.needs_truth else rows.inferences(model, last=last)
    which = f"the latest {last} {'labelled ' if statistic.needs_truth else ''}inferences of model {model!r}"
    if frame.empty:
        raise NotFound(f"model {model!r} has no {'labelled ' if statistic.needs_truth else ''}inferences yet")
    protected, outcome = request.protected_attribute, request.outcome_name
    favorable = values_of(request.favorable_outcome)
    groups = Groups(
        favorable=_matches(frame[outcome], favorable, "favorableOutcome"),
        truth=_matches(frame[ground_truth(outcome)], favorable, "favorableOutcome") if statistic.needs_truth else None,
        privileged=_matches(frame[protected], values_of(request.privileged_attribute), "privilegedAttribute"),
        unprivileged=_matches(frame[protected], values_of(request.unprivileged_attribute), "unprivilegedAttribute"),
    )
    value = statistic.of(groups)
    if not math.isfinite(value):
        raise InvalidInput(f"{statistic.name} is undefined on {which}: {groups.counts()}")
    delta = request.threshold_delta
    bounds = statistic.bounds(delta)
    phrases = (
        f"{_phrase(protected, request.privileged_attribute)} (privileged)",
        f"{_phrase(protected, request.unprivileged_attribute)} (unprivileged)",
        _phrase(outcome, request.favorable_outcome),
    )
    return Result.single(statistic.name, bounds, value, statistic.meaning(value, *phrases))


def _matches(column: pd.Series, values: tuple[Scalar, ...], field: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column):
        wrong = [v for v in values if not isinstance(v, bool)]
        kind = "boolean"
    elif pd.api.types.is_numeric_dtype(column):
        wrong = [v for v in values if isinstance(v, bool | str)]
        kind = "numeric"
    else:
        wrong = []
    if wrong:
        raise InvalidInput(f"{field}: {json.dumps(wrong[0])} is not a value of the {kind} column {column.name!r}")
    return column.isin(values).to_numpy()


def _phrase(column: str, value: Scalar | list[Scalar]) -> str:
    return f"{column} {'in' if isinstance(value, list) else '='} {json.dumps(value)}"


def _points(value: float) -> str:
    """A difference of two rates, without its sign, in percentage points."""
    return f"{abs(value) * 100:.2f} percentage points"


def _how_often(value: float) -> str:
    if value == 0:
        return "as often as"
    return f"{_points(value)} {'more' if value > 0 else 'less'} often than"


def _spd(value: float, privileged: str, unprivileged: str, outcome: str) -> str:
    return (
        f"The SPD of {value:.4f} means that rows with {unprivileged} got {outcome} {_how_often(value)} rows with "
        f"{privileged}."
    )


def _dir(value: float, privileged: str, unprivileged: str, outcome: str) -> str:
    return (
        f"The DIR of {value:.4f} means that rows with {unprivileged} got {outcome} {value:.4f} times as often as "
        f"rows with {privileged}."
    )


def _eod(value: float, privileged: str, unprivileged: str, outcome: str) -> str:
    return (
        f"The EOD of {value:.4f} means that among rows whose ground truth is {outcome}, those with {unprivileged} "
        f"were predicted {outcome} {_how_often(value)} those with {privileged}."
    )


def _aod(value: float, privileged: str, unprivileged: str, outcome: str) -> str:
    return (
        f"The AOD of {value:.4f} means that rows with {unprivileged} have true and false positive rates for "
        f"{outcome} {_points(value)} {'higher' if value >= 0 else 'lower'} on average than rows with {privileged}."
    )


def _eqodds(value: float, privileged: str, unprivileged: str, outcome: str) -> str:
    return (
        f"The equalized odds difference of {value:.4f} means that the true or false positive rates for {outcome} "
        f"of rows with {unprivileged} and rows with {privileged} differ by up to {_points(value)}."
    )


def _symmetric(delta: float) -> Bounds:
    return Bounds(-delta, delta)


STATISTICS = (
    GroupStatistic(
        "SPD",
        "Statistical Parity Difference (SPD): the unprivileged group's rate of favorable outcomes less the "
        "privileged group's; between -0.1 and 0.1 usually counts as fair.",
        needs_truth=False,
        default_delta=0.1,
        bounds=_symmetric,
        of=lambda g: group_statistics.statistical_parity_difference(g.favorable, g.privileged, g.unprivileged),
        meaning=_spd,
    ),
    GroupStatistic(
        "DIR",
        "Disparate Impact Ratio (DIR): the unprivileged group's rate of favorable outcomes over the privileged "
        "group's; 1 is parity, and between 0.8 and 1.2 usually counts as fair.",
        needs_truth=False,
        default_delta=0.2,
        bounds=lambda delta: Bounds(1 - delta, 1 + delta),
        of=lambda g: group_statistics.disparate_impact_ratio(g.favorable, g.privileged, g.unprivileged),
        meaning=_dir,
    ),
    GroupStatistic(
        "EOD",
        "Equal Opportunity Difference (EOD, Wharf's): among rows whose ground truth is favorable, the unprivileged "
        "group's rate of favorable predictions less the privileged group's (true positive rates).",
        needs_truth=True,
        default_delta=0.1,
        bounds=_symmetric,
        of=lambda g: group_statistics.equal_opportunity_difference(g.favorable, g.truth, g.privileged, g.unprivileged),
        meaning=_eod,
    ),
    GroupStatistic(
        "AOD",
        "Average Odds Difference (AOD, Wharf's): the mean of the unprivileged group's true and false positive rates "
        "less the privileged group's.",
        needs_truth=True,
        default_delta=0.1,
        bounds=_symmetric,
        of=lambda g: group_statistics.average_odds_difference(g.favorable, g.truth, g.privileged, g.unprivileged),
        meaning=_aod,
    ),
    GroupStatistic(
        "EQODDS",
        "Equalized Odds Difference (EQODDS, Wharf's): the larger of the absolute differences between the groups' "
        "true positive rates and their false positive rates; 0 when both rates are equal.",
        needs_truth=True,
        default_delta=0.1,
        bounds=lambda delta: Bounds(0.0, delta),
        of=lambda g: group_statistics.equalized_odds_difference(g.favorable, g.truth, g.privileged, g.unprivileged),
        meaning=_eqodds,
    ),
)
