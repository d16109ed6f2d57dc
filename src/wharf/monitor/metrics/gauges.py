"""Scheduled metrics as Prometheus gauges, named and labelled as TrustyAI's, so that its dashboards and alerts work.

Each metric is the gauge `trustyai_<metric>` (`trustyai_spd`, `trustyai_kstest`, ...), one sample per scheduled
request with TrustyAI's labels: `model`, `metricName`, `request` (the request id), `requestName` (when the request
has one) and `batch_size`; group fairness adds `protected`, `privileged`, `unprivileged`, `outcome` and
`favorable_value` (values as JSON, e.g. `1` or `"female"`); a per-column drift metric has one sample per column,
labelled `subcategory`. A request whose latest computation failed has no sample until one succeeds.

Wharf adds the alert state of every request, labelled `model`, `metricName`, `request` (and `requestName`):
`wharf_monitor_metric_outside_bounds` (1 while outside its bounds) and `wharf_monitor_metric_alert_since_seconds`
(when it last entered or left its bounds, Unix seconds). The samples are made at each scrape from the scheduler's
latest results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wharf.monitor.metrics.requests import GroupRequest
from wharf.monitor.metrics.scheduled import ScheduledRequest, Status

OUTSIDE_BOUNDS = "wharf_monitor_metric_outside_bounds"
ALERT_SINCE = "wharf_monitor_metric_alert_since_seconds"


def request_labels(scheduled: ScheduledRequest) -> dict[str, str]:
    """The labels that say which request a sample is of."""
    labels = {"model": scheduled.request.model_id, "metricName": scheduled.metric.name, "request": str(scheduled.id)}
    if scheduled.request.request_name is not None:
        labels["requestName"] = scheduled.request.request_name
    return labels


def metric_labels(scheduled: ScheduledRequest) -> dict[str, str]:
    """TrustyAI's labels of a request's gauge sample."""
    request = scheduled.request
    labels = request_labels(scheduled) | {"batch_size": str(request.batch_size)}
    if isinstance(request, GroupRequest):
        labels |= {
            "protected": request.protected_attribute,
            "privileged": orjson.dumps(request.privileged_attribute).decode(),
            "unprivileged": orjson.dumps(request.unprivileged_attribute).decode(),
            "outcome": request.outcome_name,
            "favorable_value": orjson.dumps(request.favorable_outcome).decode(),
        }
    return labels


class MetricGauges(Collector):
    """Collects the gauges from `snapshot`, the scheduled requests and their status at the time of a scrape."""

    def __init__(self, snapshot: Callable[[], list[tuple[ScheduledRequest, Status]]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        outside = GaugeMetricFamily(OUTSIDE_BOUNDS, "1 while a scheduled metric is outside its bounds")
        since = GaugeMetricFamily(ALERT_SINCE, "when a scheduled metric last entered or left its bounds")
        for scheduled, status in self._snapshot():
            if status.alert.since is not None:
                labels = request_labels(scheduled)
                outside.add_sample(OUTSIDE_BOUNDS, labels, float(status.alert.outside_bounds))
                since.add_sample(ALERT_SINCE, labels, status.alert.since)
            result = status.current
            if result is None:
                continue
            metric = scheduled.metric
            family = families.setdefault(metric.gauge, GaugeMetricFamily(metric.gauge, metric.definition))
            labels = metric_labels(scheduled)
            if result.named_values is None:
                family.add_sample(metric.gauge, labels, float(result.value))
            for column, value in (result.named_values or {}).items():
                family.add_sample(metric.gauge, labels | {"subcategory": column}, value)
        yield from families.values()
        if outside.samples:
            yield outside
            yield since
