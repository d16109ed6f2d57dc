"""`resources` on the local backend with real `wharf serve` processes: a cpu limit is the CPU affinity of every
thread (forked from the template or started fresh), limited replicas spread over the machine's CPUs; a replica over
its memory limit is killed and restarted as OOMKilled; GPUs stay with their replica, a pending replica is the first
to go when scaling down, and a new backend counts the GPUs of the replicas it adopts."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ENV, FAST, Backends, all_ready, until, url_of
from wharf.control.backends import ReplicaResources, ReplicaSpec, ResourceSettings

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

HOG = "wharf_test_models:Hog"
ONE_GPU = "Pending: needs 1 nvidia.com/gpu, 0 of 1 free"


def _hog(revision: str, resources: ReplicaResources, env: dict[str, str] = ENV) -> ReplicaSpec:
    return ReplicaSpec(revision, "hog", HOG, None, env, (), resources)


def _cpus_allowed(pid: int) -> set[str]:
    """The CPU affinity of every thread of process `pid`, as /proc writes it (`0`, `0-1`, ...)."""
    return {
        line.split()[1]
        for task in os.listdir(f"/proc/{pid}/task")
        for line in Path(f"/proc/{pid}/task/{task}/status").read_text().splitlines()
        if line.startswith("Cpus_allowed_list:")
    }


async def test_a_cpu_limit_is_the_affinity_of_every_thread_spread_over_the_machine(
    backends: Backends,
) -> None:
    backend = backends()
    one_core = ReplicaResources(cpus=0.5)  # rounded up to a whole core
    await backend.scale(_hog("forked-1", one_core), 1)
    await backend.scale(_hog("fresh-1", one_core, {**ENV, "OMP_NUM_THREADS": "1"}), 1)  # cannot be forked
    [forked] = await until(all_ready(backend, "forked-1", 1))
    [fresh] = await until(all_ready(backend, "fresh-1", 1))
    [forked_cpu], [fresh_cpu] = _cpus_allowed(forked.pid), _cpus_allowed(fresh.pid)
    assert forked_cpu.isdigit() and fresh_cpu.isdigit()
    if len(os.sched_getaffinity(0)) > 1:
        assert forked_cpu != fresh_cpu


async def test_a_replica_over_its_memory_limit_is_killed_as_oomkilled_and_restarted(
    backends: Backends,
) -> None:
    settings = FAST.model_copy(update={"resources": ResourceSettings(memory_check_s=0.1, cgroup="off")})
    backend = backends(settings=settings)
    await backend.scale(_hog("hog-1", ReplicaResources(memory=128 << 20)), 1)
    [first] = await until(all_ready(backend, "hog-1", 1))
    body = {"inputs": [{"name": "mib", "shape": [1], "datatype": "INT64", "data": [256]}]}
    async with httpx.AsyncClient(timeout=20) as client:
        try:
            await client.post(url_of(first, "/v2/models/hog/infer"), json=body)
        except httpx.HTTPError:
            pass  # killed before it answered
    [again] = await until(lambda: [s for s in backend.replicas("hog-1") if s.ready and s.pid != first.pid])
    assert again.restarts == 1 and again.last_exit == -9
    reason = (again.last_error or "").splitlines()[0]
    assert reason.startswith("OOMKilled: memory ") and "over the limit of 128 MiB (status -9)" in reason


async def test_gpus_stay_with_their_replica_pending_ones_go_first_and_adopted_ones_keep_theirs(
    backends: Backends,
) -> None:
    settings = FAST.model_copy(update={"resources": ResourceSettings(gpus="0")})
    first = backends(settings=settings)
    gpu = _hog("gpu-1", ReplicaResources(gpus=1))
    await first.scale(gpu, 2)
    [running] = await until(lambda: [s for s in first.replicas("gpu-1") if s.ready])
    [waiting] = await until(lambda: [s for s in first.replicas("gpu-1") if s.pending])
    assert running.gpus == ("0",) and waiting.pending == ONE_GPU and waiting.pid == 0 and waiting.gpus == ()
    await first.scale(gpu, 1)
    assert [s.id for s in first.replicas("gpu-1")] == [running.id]  # the pending one went, though newer ones go first

    await first.close(stop_replicas=False)
    records = first.replicas()
    second = backends(settings=settings)
    await second.adopt(records, {"gpu-1": gpu})
    [adopted] = second.replicas("gpu-1")
    assert adopted.pid == running.pid and adopted.gpus == ("0",)
    await second.scale(_hog("gpu-2", ReplicaResources(gpus=1)), 1)
    [other] = await until(lambda: [s for s in second.replicas("gpu-2") if s.pending])
    assert other.pending == ONE_GPU
    await second.remove("gpu-1")
    [other] = await until(all_ready(second, "gpu-2", 1))
    assert other.gpus == ("0",) and other.pending is None
