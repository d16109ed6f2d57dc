"""Forwarding through the dispatcher with fake transports: retries, timeouts, statistics and mirroring."""

from __future__ import annotations

import asyncio
import random

import pytest

from wharf.errors import RequestTimeout
from wharf.gateway import GatewaySettings, Replica, ReplicaUnavailable
from wharf.gateway.codes import HttpCodes
from wharf.gateway.dispatch import ConnectFailed, Dispatcher, UpstreamFailed

from .tables import replica, revision, service, table

pytestmark = pytest.mark.anyio


def dispatcher(**settings) -> Dispatcher:  # type: ignore[no-untyped-def]
    return Dispatcher(GatewaySettings(**settings), random.Random(0))


CODES: HttpCodes[int] = HttpCodes(lambda answer: answer)  # the fake transports answer with a status


async def test_answers_are_counted_and_server_errors_are_errors() -> None:
    d = dispatcher()
    rev = revision("iris-1", replica("a"))
    d.update(table(service(revisions=(rev,))))

    async def send(replica: Replica) -> int:
        return 200 if replica.id == "a" else 0

    async def broken(replica: Replica) -> int:
        return 500

    assert await d.forward(rev, send, CODES) == 200
    assert await d.forward(rev, broken, CODES) == 500
    stats = d.snapshot()["iris-1"]
    assert (stats.in_flight, stats.requests, stats.errors, stats.error_rate) == (0, 2, 1, 0.5)


async def test_a_refused_connection_moves_to_another_replica() -> None:
    d = dispatcher()
    rev = revision("iris-1", replica("dead"), replica("alive"))
    tried: list[str] = []

    async def send(replica: Replica) -> int:
        tried.append(replica.id)
        if replica.id == "dead":
            raise ConnectFailed("refused")
        return 200

    assert [await d.forward(rev, send, CODES) for _ in range(3)] == [200, 200, 200]
    assert tried.count("dead") == 1  # ejected after its refusal
    assert d.stats.snapshot(["iris-1"])["iris-1"].errors == 0


async def test_no_replica_accepting_a_connection_is_unavailable_once_none_came_in_time() -> None:
    d = dispatcher()
    rev = revision("iris-1", replica("a"), replica("b"), timeout_s=0.1)
    d.update(table(service(revisions=(rev,))))

    async def refuse(replica: Replica) -> int:
        raise ConnectFailed("refused")

    with pytest.raises(ReplicaUnavailable, match="no ready replica that accepted a connection: none became ready"):
        await d.forward(rev, refuse, CODES)
    assert d.balancer.in_flight == {"a": 0, "b": 0}


async def test_a_failure_after_sending_is_not_retried() -> None:
    d = dispatcher()
    rev = revision("iris-1", replica("a"), replica("b"))
    calls = 0

    async def drop(replica: Replica) -> int:
        nonlocal calls
        calls += 1
        raise UpstreamFailed("connection reset")

    with pytest.raises(UpstreamFailed):
        await d.forward(rev, drop, CODES)
    assert calls == 1
    assert d.stats.snapshot(["iris-1"])["iris-1"].errors == 1


async def test_the_revision_timeout_ends_the_request() -> None:
    d = dispatcher()
    rev = revision("iris-1", replica("a"), timeout_s=0.05)

    async def hang(replica: Replica) -> int:
        await asyncio.sleep(10)
        return 200

    with pytest.raises(RequestTimeout, match="within 0.05 s") as raised:
        await d.forward(rev, hang, CODES)
    assert raised.value.http_status == 504
    got = d.stats.snapshot(["iris-1"])["iris-1"]
    assert (got.in_flight, got.errors) == (0, 1)
    assert d.balancer.in_flight == {"a": 0}


async def test_mirrored_requests_are_counted_but_never_awaited() -> None:
    d = dispatcher(shadow_concurrency=2)
    iris = service(shadow=("iris-shadow", 100))
    d.update(table(iris))
    release = asyncio.Event()
    mirrored: list[str] = []

    async def send(replica: Replica) -> int:
        if replica.id.startswith("iris-shadow"):
            mirrored.append(replica.id)
            await release.wait()
            raise UpstreamFailed("the shadow broke")
        return 200

    for _ in range(3):  # the third finds two mirrored requests in flight and is not mirrored
        d.mirror(d.router, iris, send, CODES)
        assert await d.forward(iris.revisions["iris-1"], send, CODES) == 200
    await asyncio.sleep(0)
    assert len(mirrored) == 2
    assert d.snapshot()["iris-shadow"].in_flight == 2
    release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    shadow = d.snapshot()["iris-shadow"]
    assert (shadow.in_flight, shadow.requests, shadow.errors) == (0, 2, 2)
    assert d.snapshot()["iris-1"].requests == 3


async def test_close_cancels_mirrored_requests() -> None:
    d = dispatcher()
    iris = service(shadow=("iris-shadow", 100))
    d.update(table(iris))

    async def hang(replica: Replica) -> int:
        await asyncio.sleep(10)
        return 200

    d.mirror(d.router, iris, hang, CODES)
    await asyncio.sleep(0)
    await asyncio.wait_for(d.close(), 1)
    assert d.snapshot()["iris-shadow"].in_flight == 0


def test_an_invalid_table_keeps_the_current_one() -> None:
    d = dispatcher()
    good = table(service())
    d.update(good)
    with pytest.raises(ValueError):
        d.update(table(service(traffic=(("iris-1", 50),))))
    assert d.router.table is good
    assert set(d.snapshot()) == {"iris-1"}
