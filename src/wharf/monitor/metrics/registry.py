"""Every metric the monitor computes, by TrustyAI's metric name: its request body, how it is computed and checked,
its endpoint and its Prometheus gauge.

A metric's endpoint is `/metrics/drift/<name>`, `/metrics/group/fairness/<name>` (SPD and DIR also at TrustyAI's
deprecated `/metrics/spd` and `/metrics/dir`) or `/metrics/performance/<name>`, and its gauge `trustyai_<name>`
(lower case), TrustyAI's rule, which Wharf's own drift and fairness metrics (JENSENSHANNON, PSI, CHISQUARE, EOD, AOD,
EQODDS) follow too; the performance metrics (ACCURACY, MAE, RMSE), of a kind TrustyAI has no gauges for, are
`wharf_<name>`. `compute` is the whole one-off computation: validate the body, read the rows, answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from wharf.errors import InvalidInput, NotFound
from wharf.monitor.data import Rows
from wharf.monitor.metrics import drift, fairness, performance
from wharf.monitor.metrics.requests import GroupRequest, MetricRequest, PerformanceRequest, parse
from wharf.monitor.metrics.results import Result

#: Where each kind of metric lives under /metrics.
KINDS = {"drift": "drift", "fairness": "group/fairness", "performance": "performance"}
#: The kinds of metric that are Wharf's alone: their gauges are `wharf_<name>`, not TrustyAI's `trustyai_<name>`.
WHARFS_KINDS = {"performance"}
#: The metrics TrustyAI also serves at their deprecated paths, `/metrics/<name>`.
LEGACY_PATHS = {"SPD", "DIR"}


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    definition: str
    default_delta: float | None  # None: the body must give thresholdDelta
    request: type[MetricRequest]
    compute: Callable[[Any, Rows], Result]
    #: Checks a request against the model's columns and reference data without reading inferences.
    check: Callable[[Any, Rows], None]

    @property
    def path(self) -> str:
        return f"/metrics/{KINDS[self.kind]}/{self.name.lower()}"

    @property
    def paths(self) -> tuple[str, ...]:
        """Its path, and TrustyAI's deprecated one where it has one."""
        return (self.path, f"/metrics/{self.name.lower()}") if self.name in LEGACY_PATHS else (self.path,)

    @property
    def gauge(self) -> str:
        return f"{'wharf' if self.kind in WHARFS_KINDS else 'trustyai'}_{self.name.lower()}"

    def parse(self, body: Any) -> MetricRequest:
        """The body as this metric's request, with its metric name and threshold filled in."""
        request = parse(self.request, body)
        if request.metric_name is not None and request.metric_name.upper() != self.name:
            raise InvalidInput(f"metricName: {request.metric_name!r} is not this endpoint's metric, {self.name}")
        delta = self.default_delta if request.threshold_delta is None else request.threshold_delta
        return request.model_copy(update={"metric_name": self.name, "threshold_delta": delta})


def _drift(statistic: drift.DriftStatistic) -> Metric:
    return Metric(
        name=statistic.name,
        kind="drift",
        definition=statistic.summary,
        default_delta=statistic.default_delta,
        request=statistic.request,
        compute=partial(drift.compute, statistic),
        check=partial(drift.check, statistic),
    )


def _fairness(statistic: fairness.GroupStatistic) -> Metric:
    return Metric(
        name=statistic.name,
        kind="fairness",
        definition=statistic.summary,
        default_delta=statistic.default_delta,
        request=GroupRequest,
        compute=partial(fairness.compute, statistic),
        check=fairness.check,
    )


def _performance(statistic: performance.PerformanceStatistic) -> Metric:
    return Metric(
        name=statistic.name,
        kind="performance",
        definition=statistic.summary,
        default_delta=None,
        request=PerformanceRequest,
        compute=partial(performance.compute, statistic),
        check=partial(performance.check, statistic),
    )


METRICS: Mapping[str, Metric] = {
    metric.name: metric
    for metric in (
        *map(_drift, drift.STATISTICS),
        *map(_fairness, fairness.STATISTICS),
        *map(_performance, performance.STATISTICS),
    )
}


def find(name: str) -> Metric:
    """The metric named `name` (any case); NotFound naming the metrics there are."""
    try:
        return METRICS[name.upper()]
    except KeyError:
        raise NotFound(f"no metric {name!r} (metrics: {', '.join(m.lower() for m in METRICS)})") from None


def compute(name: str, body: Mapping[str, Any], rows: Rows) -> dict[str, Any]:
    """Metric `name` (e.g. "spd", "kstest") for the request `body` over `rows`, in TrustyAI's answer shape;
    InvalidInput or NotFound naming what is wrong. Blocking: reads the rows and computes (call it off the loop)."""
    metric = find(name)
    return metric.compute(metric.parse(body), rows).answer()
