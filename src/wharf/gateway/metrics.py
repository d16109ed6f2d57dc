"""The gateway's own Prometheus metrics, served by the gateway process at `/metrics` on its REST port (a request
whose Host names no service).

Nothing is counted here: the request path counts in plain integers in each revision's window (stats.py), and this
collector renders them when scraped, each revision labelled with the namespace and service the current route
table gives it. A request costs nothing more; a scrape costs a pass over the revisions' counts. Each `Gateway` has
a registry of its own (never the process-wide one), so that several gateways in one process keep theirs apart.

Per service and revision (`namespace`, `service`, `revision` labels):
- `wharf_gateway_requests_total{traffic, code}`: answers by code (the HTTP status, or the gRPC status name; 499 or
  CANCELLED: the client went away first), and `wharf_gateway_request_duration_seconds{traffic}`, from the request's
  arrival at the gateway to its answer (waiting in the activator included). `traffic="live"` counts the requests
  routed to the revision; `traffic="shadow"` the copies of another revision's requests mirrored to it, so that a
  shadow's error rate and latency read as the live revision's do.
- `wharf_gateway_requests_in_flight` (being sent to a replica) and `wharf_gateway_activator_queued_requests`
  (waiting in the activator for a ready replica), now.
- `wharf_gateway_retries_total{reason}`: tries sent again, after a refused connection (`connection_refused`) or a
  connection that broke before any answer (`no_answer`).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.stats import RevisionWindow, Tally

_REVISION = ["namespace", "service", "revision"]


class GatewayMetrics:
    """The registry of one gateway's metrics (see the module docstring)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Revisions(dispatcher))

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class _Revisions(Collector):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "wharf_gateway_requests",
            "Requests answered, by code; traffic: live (routed to the revision) or shadow (copies mirrored to it).",
            labels=[*_REVISION, "traffic", "code"],
        )
        latency = HistogramMetricFamily(
            "wharf_gateway_request_duration_seconds",
            "From a request's arrival at the gateway to its answer.",
            labels=[*_REVISION, "traffic"],
        )
        in_flight = GaugeMetricFamily(
            "wharf_gateway_requests_in_flight", "Requests being sent to a replica.", labels=_REVISION
        )
        queued = GaugeMetricFamily(
            "wharf_gateway_activator_queued_requests",
            "Requests waiting in the activator for a ready replica.",
            labels=_REVISION,
        )
        retries = CounterMetricFamily(
            "wharf_gateway_retries",
            "Tries sent again: after a refused connection, or one that broke before any answer.",
            labels=[*_REVISION, "reason"],
        )
        stats = self._dispatcher.stats
        for service in self._dispatcher.router.table.services:
            for revision in service.revisions.values():
                labels = [service.namespace, service.name, revision.name]
                window = stats.get(revision.name) or _UNUSED
                in_flight.add_metric(labels, window.in_flight)
                queued.add_metric(labels, window.queued)
                retries.add_metric([*labels, "connection_refused"], window.refused)
                retries.add_metric([*labels, "no_answer"], window.resent)
                for traffic, tally in (("live", window.live), ("shadow", window.mirrored)):
                    if traffic == "shadow" and not tally.codes:
                        continue  # never a shadow
                    for code, count in sorted(tally.codes.items()):
                        requests.add_metric([*labels, traffic, code], count)
                    latency.add_metric([*labels, traffic], _buckets(tally), tally.seconds)
        yield from (requests, latency, in_flight, queued, retries)


_UNUSED = RevisionWindow(1.0, 1.0)  # what a revision without requests shows: zeros


def _buckets(tally: Tally) -> list[tuple[str, float]]:
    return [(floatToGoString(bound), count) for bound, count in tally.histogram()]
