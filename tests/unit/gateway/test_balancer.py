"""In-flight counting, container-concurrency queues and passive ejection, without sockets."""

from __future__ import annotations

import asyncio
import random

import pytest

from wharf.errors import ServerBusy
from wharf.gateway import ReplicaUnavailable
from wharf.gateway.balancer import Balancer

from .tables import replica, revision

pytestmark = pytest.mark.anyio


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def balancer(max_queued: int = 2, clock: Clock | None = None) -> Balancer:
    return Balancer(random.Random(0), max_queued=max_queued, eject_s=5.0, clock=clock or Clock())


async def test_requests_spread_over_the_least_loaded_ready_replicas() -> None:
    rev = revision("r", replica("a"), replica("b"), replica("down", ready=False))
    b = balancer()
    picked = [await b.acquire(rev) for _ in range(4)]
    assert sorted(r.id for r in picked) == ["a", "a", "b", "b"]
    b.release(picked[0], rev)
    assert b.in_flight[picked[0].id] == 1
    assert (await b.acquire(rev)).id == picked[0].id


async def test_no_ready_replica_is_unavailable() -> None:
    with pytest.raises(ReplicaUnavailable, match="has no ready replica") as raised:
        await balancer().acquire(revision("r", replica("down", ready=False)))
    assert (raised.value.http_status, raised.value.grpc_code) == (503, "UNAVAILABLE")
    with pytest.raises(ReplicaUnavailable, match="accepted a connection"):
        await balancer().acquire(revision("r", replica("a")), tried=frozenset({"a"}))


async def test_container_concurrency_queues_then_refuses() -> None:
    rev = revision("r", replica("a"), container_concurrency=1)
    b = balancer(max_queued=1)
    first = await b.acquire(rev)
    waiting = asyncio.create_task(b.acquire(rev))
    await asyncio.sleep(0)
    assert not waiting.done()
    with pytest.raises(ServerBusy, match="1 requests waiting"):
        await b.acquire(rev)
    b.release(first, rev)
    assert (await asyncio.wait_for(waiting, 1)).id == "a"
    assert b.in_flight["a"] == 1


async def test_a_waiter_that_gives_up_passes_its_turn_on() -> None:
    rev = revision("r", replica("a"), container_concurrency=1)
    b = balancer(max_queued=5)
    held = await b.acquire(rev)
    impatient = asyncio.create_task(b.acquire(rev))
    patient = asyncio.create_task(b.acquire(rev))
    await asyncio.sleep(0)
    b.release(held, rev)  # wakes `impatient` ...
    impatient.cancel()  # ... which leaves before it runs
    assert (await asyncio.wait_for(patient, 1)).id == "a"
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_waiters_see_replicas_added_by_a_new_table() -> None:
    rev = revision("r", replica("a"), container_concurrency=1)
    b = balancer()
    b.retain([rev])
    await b.acquire(rev)
    waiting = asyncio.create_task(b.acquire(rev))
    await asyncio.sleep(0)
    b.retain([revision("r", replica("a"), replica("b"), container_concurrency=1)])
    assert (await asyncio.wait_for(waiting, 1)).id == "b"


async def test_an_ejected_replica_is_avoided_for_a_while() -> None:
    clock = Clock()
    rev = revision("r", replica("a"), replica("b"))
    b = balancer(clock=clock)
    b.eject(replica("a"))
    assert [(await b.acquire(rev)).id for _ in range(3)] == ["b", "b", "b"]
    assert (await b.acquire(revision("alone", replica("a")))).id == "a"  # better than nothing
    clock.now = 6.0
    assert (await b.acquire(rev)).id == "a"


async def test_retain_forgets_idle_replicas_only() -> None:
    rev = revision("r", replica("a"), replica("b"))
    b = balancer()
    busy = await b.acquire(rev)
    b.retain([])
    assert b.in_flight == {busy.id: 1}
    b.release(busy, rev)
    assert b.in_flight == {busy.id: 0}


async def test_waiters_woken_together_keep_queueing_in_one_queue() -> None:
    rev = revision("r", replica("a"), container_concurrency=1)
    b = balancer(max_queued=5)
    b.retain([rev])
    held = await b.acquire(rev)
    waiters = [asyncio.create_task(b.acquire(rev)) for _ in range(2)]
    await asyncio.sleep(0)
    b.retain([rev])  # wakes both; neither finds room, so both queue again
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    b.release(held, rev)
    first = await asyncio.wait_for(waiters[0], 1)
    b.release(first, rev)
    assert (await asyncio.wait_for(waiters[1], 1)).id == "a"
