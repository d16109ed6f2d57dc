"""The activator through the dispatcher and the REST proxy, with fake transports: requests for a revision without a
ready replica wait for a route table that brings one."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time

import orjson
import pytest

from wharf.gateway import ActivationFailed, Gateway, GatewaySettings, Replica, RouteTable
from wharf.gateway.codes import HttpCodes
from wharf.gateway.dispatch import Dispatcher, Send
from wharf.gateway.proxy import RestProxy
from wharf.logger import PayloadLogger

from .tables import replica, revision, service, table
from .test_proxy import FakeUpstream, call

pytestmark = pytest.mark.anyio

COLD = replica("r0", ready=False)
WARM = replica("r0")


def routes(*replicas: Replica, timeout_s: float = 5.0, container_concurrency: int = 0) -> RouteTable:
    """Service iris, all of whose traffic goes to revision iris-1 with `replicas`."""
    rev = revision("iris-1", *replicas, timeout_s=timeout_s, container_concurrency=container_concurrency)
    return table(service(revisions=(rev,)))


def dispatcher(first: RouteTable, **settings: float) -> tuple[Dispatcher, list[str]]:
    """A dispatcher routing by `first`, and the revision names its activator signalled demand for."""
    d = Dispatcher(GatewaySettings(**settings), random.Random(0))
    demands: list[str] = []
    d.activator.on_demand = demands.append
    d.update(first)
    return d, demands


class Transport:
    """Answers 200 after a few turns of the loop; records which request got through, and the most at once."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.busy = 0
        self.peak = 0

    def send(self, request: int) -> Send[int]:
        async def send(replica: Replica) -> int:
            self.order.append(request)
            self.busy += 1
            self.peak = max(self.peak, self.busy)
            for _ in range(3):
                await asyncio.sleep(0)
            self.busy -= 1
            return 200

        return send


CODES: HttpCodes[int] = HttpCodes(lambda answer: answer)  # the fake transports answer with a status


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_waiters_wake_on_a_table_with_a_ready_replica_in_arrival_order() -> None:
    cold = routes(COLD, container_concurrency=1)
    d, demands = dispatcher(cold)
    rev = cold.services[0].revisions["iris-1"]
    transport = Transport()
    waiting = []
    for i in range(5):
        waiting.append(asyncio.create_task(d.forward(rev, transport.send(i), CODES)))
        await settle()  # each arrives after the one before
    stats = d.snapshot()["iris-1"]
    assert (stats.queued, stats.in_flight, stats.requests) == (5, 0, 0)
    assert demands == ["iris-1"]  # once for the whole wait, not per request

    d.update(routes(replica("r0", ready=False), replica("r1", ready=False), container_concurrency=1))  # starting
    await settle()
    assert not any(task.done() for task in waiting)
    assert d.snapshot()["iris-1"].queued == 5

    d.update(routes(COLD, replica("r1"), container_concurrency=1))
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [200] * 5
    assert transport.order == [0, 1, 2, 3, 4]  # each dispatched once, first come first served
    assert transport.peak == 1  # container_concurrency holds for them as for any request
    stats = d.snapshot()["iris-1"]
    assert (stats.queued, stats.in_flight, stats.requests, stats.errors) == (0, 0, 5, 0)
    assert demands == ["iris-1"]


async def test_each_wait_signals_demand_once() -> None:
    d, demands = dispatcher(routes(COLD))
    rev = d.router.table.services[0].revisions["iris-1"]
    transport = Transport()
    first = [asyncio.create_task(d.forward(rev, transport.send(i), CODES)) for i in range(2)]
    await settle()
    d.update(routes(WARM))
    await asyncio.wait_for(asyncio.gather(*first), 1)
    assert await d.forward(rev, transport.send(2), CODES) == 200  # the request's old revision: no wait
    assert demands == ["iris-1"]

    d.update(routes(COLD))  # scaled to zero again: the next request starts another wait
    second = asyncio.create_task(d.forward(rev, transport.send(3), CODES))
    await settle()
    assert demands == ["iris-1", "iris-1"]
    d.update(routes(WARM))
    assert await asyncio.wait_for(second, 1) == 200
    assert transport.order == [0, 1, 2, 3]


async def test_waiting_past_the_deadline_fails() -> None:
    d, _ = dispatcher(routes(COLD, timeout_s=0.05), activator_retry_after_s=3)
    rev = d.router.table.services[0].revisions["iris-1"]
    with pytest.raises(ActivationFailed, match="none became ready within 0.05 s") as raised:
        await d.forward(rev, Transport().send(0), CODES)
    assert (raised.value.http_status, raised.value.grpc_code, raised.value.retry_after_s) == (503, "UNAVAILABLE", 3)
    stats = d.snapshot()["iris-1"]
    assert (stats.queued, stats.requests, stats.errors) == (0, 1, 1)


async def test_activator_timeout_caps_the_revision_timeout() -> None:
    d, _ = dispatcher(routes(COLD, timeout_s=30.0), activator_timeout_s=0.05)
    rev = d.router.table.services[0].revisions["iris-1"]
    started = time.monotonic()
    with pytest.raises(ActivationFailed, match="within 0.05 s"):
        await d.forward(rev, Transport().send(0), CODES)
    assert time.monotonic() - started < 1


async def test_a_full_queue_refuses_at_once() -> None:
    d, demands = dispatcher(routes(COLD), activator_queue_size=2)
    rev = d.router.table.services[0].revisions["iris-1"]
    transport = Transport()
    waiting = [asyncio.create_task(d.forward(rev, transport.send(i), CODES)) for i in range(2)]
    await settle()
    with pytest.raises(ActivationFailed, match="2 requests already wait for one") as raised:
        await asyncio.wait_for(d.forward(rev, transport.send(2), CODES), 0.5)
    assert raised.value.http_status == 503
    assert d.snapshot()["iris-1"].queued == 2
    d.update(routes(WARM))
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [200, 200]
    assert (transport.order, demands) == ([0, 1], ["iris-1"])


async def test_a_waiter_that_leaves_is_never_dispatched() -> None:
    d, demands = dispatcher(routes(COLD))
    rev = d.router.table.services[0].revisions["iris-1"]
    transport = Transport()
    waiting = [asyncio.create_task(d.forward(rev, transport.send(i), CODES)) for i in range(3)]
    await settle()
    waiting[1].cancel()  # its client went away
    await settle()
    assert d.snapshot()["iris-1"].queued == 2
    d.update(routes(WARM))
    assert await asyncio.wait_for(asyncio.gather(waiting[0], waiting[2]), 1) == [200, 200]
    assert transport.order == [0, 2]

    d.update(routes(COLD))
    alone = asyncio.create_task(d.forward(rev, transport.send(3), CODES))
    await settle()
    alone.cancel()  # the last waiter leaving ends the wait: the next request signals again
    await settle()
    assert d.snapshot()["iris-1"].queued == 0
    late = asyncio.create_task(d.forward(rev, transport.send(4), CODES))
    await settle()
    assert demands == ["iris-1", "iris-1", "iris-1"]
    late.cancel()
    await asyncio.gather(late, return_exceptions=True)
    assert transport.order == [0, 2]


async def test_waiters_of_a_removed_revision_fail() -> None:
    d, _ = dispatcher(routes(COLD))
    rev = d.router.table.services[0].revisions["iris-1"]
    waiting = asyncio.create_task(d.forward(rev, Transport().send(0), CODES))
    await settle()
    d.update(table(service(name="other", traffic=(("other-1", 100),))))
    with pytest.raises(ActivationFailed, match="'iris-1' was removed while requests waited"):
        await asyncio.wait_for(waiting, 1)
    with pytest.raises(ActivationFailed, match="'iris-1' is no longer routed to"):
        await d.forward(rev, Transport().send(1), CODES)


async def test_a_revision_whose_replicas_keep_failing_fails_its_waiters_and_new_requests_at_once() -> None:
    d, _ = dispatcher(routes(COLD))
    rev = d.router.table.services[0].revisions["iris-1"]
    waiting = asyncio.create_task(d.forward(rev, Transport().send(0), CODES))
    await settle()
    failing = dataclasses.replace(rev, failing="exited (status 1): OSError: weights missing")
    d.update(table(service(revisions=(failing,))))
    expected = "'iris-1' has no ready replica: its replicas keep failing to start: exited .* weights missing"
    with pytest.raises(ActivationFailed, match=expected):
        await asyncio.wait_for(waiting, 1)
    with pytest.raises(ActivationFailed, match=expected):
        await asyncio.wait_for(d.forward(failing, Transport().send(1), CODES), 1)


async def test_a_failing_demand_callback_does_not_fail_the_request(caplog: pytest.LogCaptureFixture) -> None:
    d, _ = dispatcher(routes(COLD))
    rev = d.router.table.services[0].revisions["iris-1"]

    def broken(name: str) -> None:
        raise RuntimeError("control plane down")

    d.activator.on_demand = broken
    waiting = asyncio.create_task(d.forward(rev, Transport().send(0), CODES))
    await settle()
    assert "on_demand failed" in caplog.text
    d.update(routes(WARM))
    assert await asyncio.wait_for(waiting, 1) == 200


async def test_rest_answers_503_with_retry_after() -> None:
    settings = GatewaySettings(activator_timeout_s=0.05, activator_retry_after_s=2)
    d = Dispatcher(settings, random.Random(0))
    d.update(routes(COLD))
    upstream = FakeUpstream()
    app = RestProxy(d, upstream, settings, PayloadLogger())  # type: ignore[arg-type]
    status, headers, body = await call(app, "/v2/models/iris/infer", [(b"host", b"iris.default.example.com")])
    assert (status, headers[b"retry-after"], headers[b"content-type"]) == (503, b"2", b"application/json")
    assert orjson.loads(body) == {"error": "revision 'iris-1' has no ready replica: none became ready within 0.05 s"}
    assert upstream.sent == []


def test_the_gateway_passes_on_demand_to_its_activator() -> None:
    demands: list[str] = []
    gateway = Gateway(on_demand=demands.append)
    assert gateway.on_demand == demands.append
    gateway.on_demand = None
    assert gateway.on_demand is None
