"""A replica that dies under requests, through the dispatcher with fake transports: a request its connection
dropped unanswered is sent once more, and requests that every ready replica refused wait in the activator for the
restarted one instead of failing."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest

from wharf.gateway import ActivationFailed, GatewaySettings, Replica, Revision, RouteTable
from wharf.gateway.codes import HttpCodes
from wharf.gateway.dispatch import ConnectFailed, Dispatcher, NoAnswer, UpstreamFailed
from wharf.gateway.upstream import HttpUpstream

from .tables import replica, revision, service, table

pytestmark = pytest.mark.anyio


def routes(*replicas: Replica, timeout_s: float = 5.0) -> RouteTable:
    return table(service(revisions=(revision("iris-1", *replicas, timeout_s=timeout_s),)))


def dispatcher(first: RouteTable) -> tuple[Dispatcher, list[str]]:
    d = Dispatcher(GatewaySettings(), random.Random(0))
    demands: list[str] = []
    d.activator.on_demand = demands.append
    d.update(first)
    return d, demands


CODES: HttpCodes[int] = HttpCodes(lambda answer: answer)  # the fake transports answer with a status


def current(d: Dispatcher) -> Revision:
    return d.router.table.services[0].revisions["iris-1"]


async def test_a_request_dropped_unanswered_goes_once_more_to_another_replica() -> None:
    d, _ = dispatcher(routes(replica("dying"), replica("alive")))
    sent: list[str] = []

    async def send(replica: Replica) -> int:
        sent.append(replica.id)
        if replica.id == "dying":
            raise NoAnswer("replica closed the connection before answering")
        return 200

    d.balancer.in_flight["alive"] = 1  # the least loaded replica is the dying one
    assert await d.forward(current(d), send, CODES) == 200
    assert sent == ["dying", "alive"]
    assert d.stats.snapshot(["iris-1"])["iris-1"].errors == 0


async def test_with_one_replica_a_dropped_request_goes_again_over_a_new_connection() -> None:
    d, _ = dispatcher(routes(replica("only")))
    answers = iter([NoAnswer("a stale keep-alive connection"), 200])

    async def send(replica: Replica) -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await d.forward(current(d), send, CODES) == 200


async def test_a_request_is_sent_again_once_at_most() -> None:
    d, _ = dispatcher(routes(replica("a"), replica("b")))
    sent: list[str] = []

    async def drop(replica: Replica) -> int:
        sent.append(replica.id)
        raise NoAnswer("dropped")

    with pytest.raises(UpstreamFailed, match="dropped"):
        await d.forward(current(d), drop, CODES)
    assert sorted(sent) == ["a", "b"]
    assert d.balancer.in_flight == {"a": 0, "b": 0}


async def test_a_replica_that_drops_the_request_again_on_a_new_connection_is_dying() -> None:
    dying = replica("r0")
    d, _ = dispatcher(routes(dying))
    restarted = dataclasses.replace(dying, http_url="http://r0.test:9090")
    sent: list[str] = []

    async def send(replica: Replica) -> int:
        sent.append(replica.http_url)
        if replica == dying:  # its listener took the new connection as the process went down
            raise NoAnswer("connection reset")
        return 200

    task = asyncio.create_task(d.forward(current(d), send, CODES))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done() and sent == [dying.http_url] * 2  # held for a replica other than the dying one
    d.update(routes(restarted))
    assert await asyncio.wait_for(task, 1) == 200


async def test_a_request_whose_answer_had_begun_is_not_sent_again() -> None:
    d, _ = dispatcher(routes(replica("a"), replica("b")))
    sent: list[str] = []

    async def broken(replica: Replica) -> int:
        sent.append(replica.id)
        raise UpstreamFailed("closed in the middle of the answer")

    with pytest.raises(UpstreamFailed):
        await d.forward(current(d), broken, CODES)
    assert len(sent) == 1


async def test_requests_every_ready_replica_refused_wait_for_the_restarted_one() -> None:
    dead = replica("r0")
    d, demands = dispatcher(routes(dead))
    restarted = dataclasses.replace(dead, http_url="http://r0.test:9090")  # the same replica, a new process
    sent: list[str] = []

    async def send(replica: Replica) -> int:
        sent.append(replica.http_url)
        if replica == dead:
            raise ConnectFailed("connection refused")
        return 200

    async def dropped(replica: Replica) -> int:  # in flight when the replica died; then refused like the others
        if replica == dead and dead.http_url not in sent:
            sent.append(replica.http_url)
            raise NoAnswer("connection reset")
        return await send(replica)

    waiting = [asyncio.create_task(d.forward(current(d), each, CODES)) for each in (dropped, send, send)]
    for _ in range(10):
        await asyncio.sleep(0)
    assert not any(task.done() for task in waiting)  # held, not answered 503
    assert d.snapshot()["iris-1"].queued == 3
    assert demands == []  # the table is behind; the control plane already knows

    d.update(routes(dataclasses.replace(dead, ready=False)))  # the control plane saw it end
    await asyncio.sleep(0)
    assert not any(task.done() for task in waiting)
    d.update(routes(restarted))
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [200, 200, 200]
    assert sent.count(restarted.http_url) == 3
    assert d.stats.snapshot(["iris-1"])["iris-1"].errors == 0


async def test_a_table_that_still_lists_only_refusing_replicas_wakes_nobody() -> None:
    dead = replica("r0")
    d, _ = dispatcher(routes(dead, timeout_s=0.2))
    calls = 0

    async def refuse(replica: Replica) -> int:
        nonlocal calls
        calls += 1
        raise ConnectFailed("connection refused")

    task = asyncio.create_task(d.forward(current(d), refuse, CODES))
    for _ in range(5):
        await asyncio.sleep(0)
    d.update(routes(dead, timeout_s=0.2))  # an unrelated change: the same replica, still listed as ready
    with pytest.raises(ActivationFailed, match="no ready replica that accepted a connection"):
        await asyncio.wait_for(task, 1)
    assert calls == 1  # no busy loop of connection attempts while the table lagged


async def _replica_that(answer: bytes) -> tuple[asyncio.Server, Replica]:
    """A server on a real socket that reads a request, writes `answer` and closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, Replica("r0", f"http://127.0.0.1:{port}", "", True)


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (b"", "before answering"),
        (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n{", "in the middle"),
    ],
)
async def test_upstream_may_resend_a_request_whose_connection_closed_before_the_whole_answer(
    answer: bytes, what: str
) -> None:
    """Answers are read whole: a replica that died between its answer's head and its body gave the client nothing."""
    server, replica = await _replica_that(answer)
    client = HttpUpstream(connect_timeout_s=2, pool_size=4, idle_timeout_s=30)
    try:
        with pytest.raises(NoAnswer, match=f"closed the connection {what}"):
            await asyncio.wait_for(client.send(replica, "POST", "/v2/models/m/infer", [], b"{}"), 2)
    finally:
        client.close()
        server.close()
        await server.wait_closed()
