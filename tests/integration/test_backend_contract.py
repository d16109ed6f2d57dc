"""The backend contract, one suite for every backend (`local`: processes on this machine; `ray`: actors on a local
Ray cluster of one node that autoscales, `tests/ray_autoscaling.py`): a replica started from a spec becomes ready and
answers on the address it reports; scaling up and down; removal; a killed replica (its process, or its Ray actor) is
noticed and replaced; a backend that takes over after the daemon's restart adopts the live replicas instead of
starting them again.

On the same cluster (its head started once for the module), the Ray backend's own test: a replica that no node can
hold shows Pending with the reason, Ray's autoscaler adds a node for it, and it becomes ready there."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.integration.conftest import HELPERS
from tests.ray_autoscaling import autoscaling_head  # noqa: F401 - the module's cluster fixture
from wharf.control.backends import LocalBackend, LocalBackendSettings, ReplicaResources, ReplicaSpec, ReplicaState
from wharf.control.backends.base import Backend
from wharf.control.backends.process import is_replica_process

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

FAST = {
    "start_timeout_s": 30,
    "health_interval_s": 0.1,
    "backoff_initial_s": 0.2,
    "backoff_max_s": 2,
    "kill_grace_s": 2,
}
SPEC = ReplicaSpec("echo-1", "echo", "wharf_test_models:Echo", None, {"PYTHONPATH": str(HELPERS)})
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [7]}]}
T = TypeVar("T")
Backends = Callable[[], Backend]


@pytest.fixture(params=["local", "ray"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def backends(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backends]:
    """Make backends of `kind` on one WHARF_HOME (`backends()`); every replica they ran is stopped at the end."""
    made: list[Backend] = []

    def make() -> Backend:
        if kind == "local":
            backend: Backend = LocalBackend(tmp_path / "home", LocalBackendSettings(**FAST, prewarm=False))
        else:
            from wharf.control.backends.ray import RayBackend, RayBackendSettings

            address: str = request.getfixturevalue("autoscaling_head")
            backend = RayBackend(tmp_path / "home", RayBackendSettings(**FAST, address=address))
        made.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in made[:-1]:  # closed, their replicas adopted by the last one
            await backend.close(stop_replicas=False)
        if made:
            pids = [s.pid for s in made[-1].replicas() if s.pid]
            await made[-1].close(stop_replicas=True)
            for pid in pids:
                if is_replica_process(pid):
                    os.killpg(pid, signal.SIGKILL)


async def _until(probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll `probe` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return value


def _ready(backend: Backend, count: int) -> Callable[[], list[ReplicaState] | None]:
    def probe() -> list[ReplicaState] | None:
        states = backend.replicas(SPEC.revision)
        return states if len(states) == count and all(s.ready for s in states) else None

    return probe


async def _answers(state: ReplicaState) -> bool:
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(f"http://{state.host}:{state.http_port}/v2/models/echo/infer", json=BODY)
    except httpx.TransportError:
        return False
    return answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [7]


def _kill(backend: Backend, state: ReplicaState) -> None:
    """Kill a replica as a fault would: its process (local), its Ray actor (ray)."""
    namespace = getattr(backend, "namespace", None)
    if namespace is None:
        os.killpg(state.pid, signal.SIGKILL)
        return
    import ray

    ray.kill(ray.get_actor(state.id, namespace=namespace), no_restart=True)


async def test_start_answer_scale_and_remove(backends: Backends) -> None:
    backend = backends()
    await backend.scale(SPEC, 1)
    [first] = await _until(_ready(backend, 1))
    assert first.revision == SPEC.revision and first.spec_digest == SPEC.digest and await _answers(first)
    assert backend.log_path(SPEC.revision, first.id).exists()

    await backend.scale(SPEC, 2)
    states = await _until(_ready(backend, 2))
    assert all([await _answers(s) for s in states])

    await backend.scale(SPEC, 1)
    [kept] = backend.replicas(SPEC.revision)
    [stopped] = [s for s in states if s.id != kept.id]
    await _until(lambda: not is_replica_process(stopped.pid))
    assert await _answers(kept)

    await backend.remove(SPEC.revision)
    assert backend.replicas() == []
    await _until(lambda: not is_replica_process(kept.pid))


async def test_a_killed_replica_is_noticed_and_replaced(backends: Backends) -> None:
    backend = backends()
    await backend.scale(SPEC, 1)
    [before] = await _until(_ready(backend, 1))
    _kill(backend, before)
    await _until(lambda: not any(s.ready for s in backend.replicas()), timeout=15)  # within seconds, loaded or not
    [after] = await _until(lambda: [s for s in backend.replicas() if s.ready and s.pid != before.pid])
    assert after.id == before.id and after.restarts == 1 and after.last_error
    assert await _answers(after)


async def test_a_restarted_controller_adopts_live_replicas(backends: Backends) -> None:
    first = backends()
    await first.scale(SPEC, 2)
    running = await _until(_ready(first, 2))
    await first.close(stop_replicas=False)
    assert all(is_replica_process(s.pid) for s in running)

    second = backends()
    await second.adopt(running, {SPEC.revision: SPEC})
    adopted = await _until(_ready(second, 2))
    assert {(s.id, s.pid, s.http_port) for s in adopted} == {(s.id, s.pid, s.http_port) for s in running}
    assert all(s.restarts == 0 for s in adopted) and all([await _answers(s) for s in adopted])


@pytest.mark.parametrize("kind", ["ray"])
async def test_a_replica_no_node_holds_gets_a_node_from_the_autoscaler(backends: Backends) -> None:
    """Last in the module: the node the autoscaler adds stays (idle for minutes) until the cluster stops."""
    backend = backends()
    big = dataclasses.replace(SPEC, resources=ReplicaResources(cpus=2))
    said: list[str] = []

    def ready() -> ReplicaState | None:
        [replica] = backend.replicas()
        if replica.pending and replica.pending not in said:
            said.append(replica.pending)
        return replica if replica.ready else None

    await backend.scale(big, 1)
    replica = await _until(ready, timeout=90)
    assert said and said[0].startswith("Pending: no node of the Ray cluster has 2 CPU"), said
    assert replica.pending is None and await _answers(replica)
    import ray

    assert sorted(node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]) == [1.0, 2.0]
