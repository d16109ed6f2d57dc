"""The dispatcher's spans, through fake transports and a real OTLP receiver: the activator wait, the tries sent
again, and the shadow copy whose call carries its own span's context."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.otlp_receiver import CLIENT, INTERNAL, OtlpReceiver, describe
from wharf.gateway import GatewaySettings, Replica, RouteTable
from wharf.gateway.codes import HttpCodes
from wharf.gateway.dispatch import Dispatcher, NoAnswer
from wharf.telemetry import tracing

from .tables import replica, revision, service, table

pytest_plugins = ["tests.otlp_fixtures"]
pytestmark = pytest.mark.anyio

CODES: HttpCodes[int] = HttpCodes(lambda answer: answer)


def dispatcher(routes: RouteTable) -> Dispatcher:
    d = Dispatcher(GatewaySettings(), random.Random(0))
    d.update(routes)
    return d


def routes(*replicas: Replica) -> RouteTable:
    return table(service(revisions=(revision("iris-1", *replicas),)))


async def ok(replica: Replica) -> int:
    return 200


async def test_a_request_waiting_for_a_cold_revision_has_an_activator_wait_span(traced: OtlpReceiver) -> None:
    d = dispatcher(routes(replica("starting", ready=False)))
    with tracing.server_span("POST /v2/models/iris/infer", ()):
        task = asyncio.create_task(d.forward(d.router.table.services[0].revisions["iris-1"], ok, CODES))
        for _ in range(5):
            await asyncio.sleep(0)
        d.update(routes(replica("starting")))
        assert await asyncio.wait_for(task, 1) == 200
    spans = traced.wait_for(lambda spans: len(spans) == 2)
    request = next(s for s in spans if s.name.startswith("POST"))
    (wait,) = [s for s in spans if s.name == "activator wait"]
    assert wait.parent_id == request.span_id and wait.kind == INTERNAL, describe(spans)
    assert wait.attributes == {"wharf.revision": "iris-1", "wharf.cold_start": True}


async def test_a_try_sent_again_is_an_event(traced: OtlpReceiver) -> None:
    d = dispatcher(routes(replica("dying"), replica("alive")))

    async def send(replica: Replica) -> int:
        if replica.id == "dying":
            raise NoAnswer("closed")
        return 200

    d.balancer.in_flight["alive"] = 1  # the dying one is tried first
    with tracing.server_span("request", ()):
        assert await d.forward(d.router.table.services[0].revisions["iris-1"], send, CODES) == 200
    (request,) = traced.wait_for(lambda spans: len(spans) == 1)
    assert request.events == ["resent"]


async def test_the_shadow_copy_is_a_client_span_its_call_continues(traced: OtlpReceiver) -> None:
    iris = service(shadow=("iris-shadow", 100))
    d = dispatcher(table(iris))
    sent: dict[str, str] = {}

    async def send(replica: Replica) -> int:
        sent[replica.id] = tracing.trace_headers()["traceparent"]
        return 200

    with tracing.server_span("request", ()):
        d.mirror(d.router, iris, send, CODES)
        await d.forward(d.router.revision(iris), send, CODES)
    await asyncio.wait_for(asyncio.gather(*d._shadows), 1)
    spans = traced.wait_for(lambda spans: len(spans) == 2)
    request = next(s for s in spans if s.name == "request")
    (shadow,) = [s for s in spans if s.name == "shadow"]
    assert shadow.parent_id == request.span_id and shadow.kind == CLIENT
    assert shadow.attributes == {"wharf.revision": "iris-shadow"}
    assert sent["iris-1-r0"].split("-")[2] == request.span_id
    assert sent["iris-shadow-r0"].split("-")[2] == shadow.span_id
