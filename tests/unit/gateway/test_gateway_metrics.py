"""The gateway's own metrics, rendered from what the dispatcher counted with fake transports and a fake clock."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from wharf.gateway import GatewaySettings, Replica
from wharf.gateway.codes import HttpCodes
from wharf.gateway.dispatch import ConnectFailed, Dispatcher, NoAnswer
from wharf.gateway.metrics import GatewayMetrics

from .tables import replica, revision, service, table

pytestmark = pytest.mark.anyio

CODES: HttpCodes[int] = HttpCodes(lambda answer: answer)  # the fake transports answer with a status
IRIS = ("default", "iris")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def values(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Sample (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def labels(namespace: str, svc: str, rev: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"namespace": namespace, "service": svc, "revision": rev, **more}.items()))


async def test_requests_latency_shadow_and_retries_per_service_and_revision() -> None:
    clock = Clock()
    d = Dispatcher(GatewaySettings(), random.Random(0), clock)
    iris = service(traffic=(("iris-1", 80), ("iris-2", 20)), shadow=("iris-3", 100))
    other = service(
        "other", "team", traffic=(("other-1", 100),), revisions=(revision("other-1", replica("dead"), replica("up")),)
    )
    d.update(table(iris, other))
    dropped = {"iris-2-r0": 1}  # the canary's connection breaks once before an answer: sent again

    async def send(target: Replica) -> int:
        clock.now += 0.003  # every answer takes 3 ms
        if target.id == "dead":
            raise ConnectFailed("refused")
        if dropped.get(target.id):
            dropped[target.id] -= 1
            raise NoAnswer("closed before answering")
        return {"iris-1-r0": 200, "iris-2-r0": 503, "iris-3-r0": 500, "up": 200}[target.id]

    for name in ("iris-1", "iris-1", "iris-1", "iris-2", "iris-2"):
        d.mirror(d.router, iris, send, CODES)
        await d.forward(iris.revisions[name], send, CODES)
    await asyncio.sleep(0.01)  # the shadow's copies
    for _ in range(8):
        await d.forward(other.revisions["other-1"], send, CODES)

    got = values(GatewayMetrics(d))
    assert got[("wharf_gateway_requests_total", labels(*IRIS, "iris-1", traffic="live", code="200"))] == 3
    assert got[("wharf_gateway_requests_total", labels(*IRIS, "iris-2", traffic="live", code="503"))] == 2
    assert got[("wharf_gateway_requests_total", labels(*IRIS, "iris-3", traffic="shadow", code="500"))] == 5
    assert ("wharf_gateway_requests_total", labels(*IRIS, "iris-3", traffic="live", code="500")) not in got
    assert got[("wharf_gateway_requests_total", labels("team", "other", "other-1", traffic="live", code="200"))] == 8

    canary = labels(*IRIS, "iris-2", traffic="live")
    assert got[("wharf_gateway_request_duration_seconds_count", canary)] == 2
    # The canary's first request took two tries (6 ms), its second one (3 ms): exact Prometheus buckets.
    assert got[("wharf_gateway_request_duration_seconds_sum", canary)] == pytest.approx(0.009)
    assert (
        got[("wharf_gateway_request_duration_seconds_bucket", labels(*IRIS, "iris-2", traffic="live", le="0.0025"))]
        == 0
    )
    assert (
        got[("wharf_gateway_request_duration_seconds_bucket", labels(*IRIS, "iris-2", traffic="live", le="0.005"))] == 1
    )
    assert (
        got[("wharf_gateway_request_duration_seconds_bucket", labels(*IRIS, "iris-2", traffic="live", le="0.01"))] == 2
    )
    assert (
        got[("wharf_gateway_request_duration_seconds_bucket", labels(*IRIS, "iris-2", traffic="live", le="+Inf"))] == 2
    )
    shadow = labels(*IRIS, "iris-3", traffic="shadow")
    assert got[("wharf_gateway_request_duration_seconds_count", shadow)] == 5

    assert got[("wharf_gateway_retries_total", labels(*IRIS, "iris-2", reason="no_answer"))] == 1
    assert got[("wharf_gateway_retries_total", labels(*IRIS, "iris-2", reason="connection_refused"))] == 0
    # The dead replica refuses once, then is ejected.
    assert got[("wharf_gateway_retries_total", labels("team", "other", "other-1", reason="connection_refused"))] == 1
    assert got[("wharf_gateway_requests_in_flight", labels(*IRIS, "iris-1"))] == 0


async def test_requests_in_flight_and_waiting_in_the_activator_now() -> None:
    d = Dispatcher(GatewaySettings(), random.Random(0))
    cold = revision("cold-1", replica("starting", ready=False))
    d.update(
        table(service(revisions=(revision("iris-1"),)), service("cold", traffic=(("cold-1", 100),), revisions=(cold,)))
    )
    release = asyncio.Event()

    async def send(target: Replica) -> int:
        await release.wait()
        return 200

    held = asyncio.create_task(d.forward(d.router.table.services[0].revisions["iris-1"], send, CODES))
    waiting = asyncio.create_task(d.forward(cold, send, CODES))
    await asyncio.sleep(0.01)
    got = values(GatewayMetrics(d))
    assert got[("wharf_gateway_requests_in_flight", labels("default", "iris", "iris-1"))] == 1
    assert got[("wharf_gateway_activator_queued_requests", labels("default", "cold", "cold-1"))] == 1
    assert got[("wharf_gateway_activator_queued_requests", labels("default", "iris", "iris-1"))] == 0
    release.set()
    assert await held == 200
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    got = values(GatewayMetrics(d))
    assert got[("wharf_gateway_activator_queued_requests", labels("default", "cold", "cold-1"))] == 0
    assert got[("wharf_gateway_requests_total", labels("default", "cold", "cold-1", traffic="live", code="499"))] == 1


async def test_each_gateway_has_its_own_registry() -> None:
    first, second = (Dispatcher(GatewaySettings(), random.Random(0)) for _ in range(2))
    first.update(table(service()))
    second.update(table(service("other", traffic=(("other-1", 100),))))

    async def send(target: Replica) -> int:
        return 200

    await first.forward(first.router.table.services[0].revisions["iris-1"], send, CODES)
    text = GatewayMetrics(first).render().decode()
    assert 'revision="iris-1"' in text and "other-1" not in text
    assert "iris-1" not in GatewayMetrics(second).render().decode()
    assert not any(m.name.startswith("wharf_gateway") for m in REGISTRY.collect())
