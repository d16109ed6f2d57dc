"""Prometheus metrics of the control plane (served at the control API's /metrics): per revision, the replicas
the autoscaler wants and has, whether it is panicking, the requests queued at the gateway, and cold starts; and
what became of the gateway's payload log events."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

_COLD_START_BUCKETS = (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60)


class ControlMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        revision = ["revision"]
        self.desired = Gauge(
            "wharf_revision_desired_replicas", "Replicas the autoscaler wants.", revision, registry=self.registry
        )
        self.ready = Gauge(
            "wharf_revision_ready_replicas", "Replicas ready to serve.", revision, registry=self.registry
        )
        self.panic = Gauge(
            "wharf_revision_panic", "1 while the autoscaler is in panic mode.", revision, registry=self.registry
        )
        self.queued = Gauge(
            "wharf_revision_queued_requests",
            "Requests waiting at the gateway for a replica.",
            revision,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "wharf_revision_in_flight_requests", "Requests being served.", revision, registry=self.registry
        )
        self.cold_start = Histogram(
            "wharf_cold_start_seconds",
            "From a request finding no replica to the revision's first ready replica.",
            revision,
            buckets=_COLD_START_BUCKETS,
            registry=self.registry,
        )

    def count_payload_events(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Report `counts()` (payload log events by outcome: sent, dropped, failed) at each scrape."""
        self.registry.register(_PayloadEvents(counts))

    def forget(self, revision: str) -> None:
        for metric in (self.desired, self.ready, self.panic, self.queued, self.in_flight, self.cold_start):
            try:
                metric.remove(revision)
            except KeyError:
                pass

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PayloadEvents(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "wharf_payload_log_events",
            "Payload log events, by outcome: sent, dropped (queue full), failed.",
            labels=["outcome"],
        )
        for outcome, count in self._counts().items():
            family.add_metric([outcome], count)
        yield family
