"""The local backend with real `wharf serve` processes: scaling and draining, restarts after a crash, failed
starts, adoption of running replicas by a new backend, and replicas forked from the warm template (the
default: every test runs so unless it turns `prewarm` off) or started fresh when the template cannot."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from pathlib import Path

import grpc
import httpx
import pytest

from tests.integration.conftest import ENV, FAST, Backends, alive, all_ready, spec_of, until, url_of
from wharf.control.backends import ReplicaSpec, ReplicaState
from wharf.control.backends.process import is_replica_process
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]


async def test_scale_up_call_each_replica_then_scale_down_drains(backends: Backends) -> None:
    backend = backends()
    slow = spec_of("slow-1", "wharf_test_models:Slow", "slow")
    await backend.scale(slow, 2)
    states = await until(all_ready(backend, "slow-1", 2))
    assert len({s.pid for s in states}) == 2 and len({s.http_port for s in states}) == 2
    assert all((Path(backend.home) / "logs" / "slow-1" / f"{s.id}.log").exists() for s in states)

    def sleep(seconds: float) -> dict[str, object]:
        return {"inputs": [{"name": "seconds", "shape": [1], "datatype": "FP32", "data": [seconds]}]}

    async with httpx.AsyncClient(timeout=20) as client:
        for state in states:
            assert (await client.post(url_of(state, "/v2/models/slow/infer"), json=sleep(0))).status_code == 200
        in_flight = [
            asyncio.create_task(client.post(url_of(s, "/v2/models/slow/infer"), json=sleep(1.5))) for s in states
        ]
        await asyncio.sleep(0.5)
        await backend.scale(slow, 1)
        [kept] = backend.replicas("slow-1")
        [stopped] = [s for s in states if s.id != kept.id]
        for answer in await asyncio.gather(*in_flight):  # the stopped replica drained: it answered too
            assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [1.5]
    await until(lambda: not alive(stopped.pid))
    assert alive(kept.pid)

    await backend.remove("slow-1")
    assert backend.replicas() == []
    await until(lambda: not alive(kept.pid))


async def test_a_killed_replica_is_restarted(backends: Backends) -> None:
    changes: list[list[ReplicaState]] = []
    backend = backends(on_change=lambda: changes.append(backend.replicas()))
    await backend.scale(spec_of("echo-1", "wharf_test_models:Echo", "echo"), 1)
    [before] = await until(all_ready(backend, "echo-1", 1))
    changes.clear()

    os.kill(before.pid, signal.SIGKILL)
    [after] = await until(lambda: [s for s in backend.replicas() if s.ready and s.pid != before.pid])
    assert (after.id, after.restarts, after.last_exit) == (before.id, 1, -signal.SIGKILL)
    assert after.last_error is not None and after.last_error.startswith("exited (status -9)")
    seen = [(s.pid, s.ready) for [s] in changes]
    assert seen[0] == (0, False) and (after.pid, False) in seen and seen[-1] == (after.pid, True)
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [7]}]}
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(url_of(after, "/v2/models/echo/infer"), json=body)
    assert answer.json()["outputs"][0]["data"] == [7]


async def test_a_replica_that_cannot_start_keeps_the_error_and_is_retried_with_backoff(
    backends: Backends, tmp_path: Path
) -> None:
    starts: dict[int, float] = {}  # pid -> when it was first seen

    def changed() -> None:
        for state in backend.replicas():
            if state.pid:
                starts.setdefault(state.pid, time.monotonic())

    backend = backends(settings=FAST.model_copy(update={"backoff_initial_s": 1.0}), on_change=changed)
    missing = tmp_path / "missing.joblib"
    await backend.scale(spec_of("bad-1", str(missing), "missing"), 1)
    [state] = await until(
        lambda: len(starts) >= 3 and [s for s in backend.replicas() if s.restarts >= 2 and s.pid == 0], timeout=15
    )
    assert not state.ready and state.last_exit == 2
    assert state.last_error is not None and state.last_error.startswith("exited before serving (status 2):")
    assert f"wharf serve: model path {missing} does not exist" in state.last_error
    first, second, third = list(starts.values())[:3]
    assert third - second > second - first + 0.5  # the second delay doubled the first


async def test_a_replica_that_does_not_start_in_time_is_killed(backends: Backends, iris_model: Path) -> None:
    # A fresh interpreter: forked from the template, the iris model may well serve within 0.2 s.
    backend = backends(settings=FAST.model_copy(update={"start_timeout_s": 0.2, "prewarm": False}))
    await backend.scale(spec_of("iris-1", str(iris_model), "iris"), 1)
    [state] = await until(lambda: [s for s in backend.replicas() if s.last_exit is not None])
    assert state.last_exit == -signal.SIGKILL and not state.ready
    assert state.last_error is not None and state.last_error.startswith("not serving within 0.2 s, killed")


async def test_a_new_backend_adopts_running_replicas_and_restarts_dead_ones(
    backends: Backends, iris_model: Path
) -> None:
    iris = spec_of("iris-1", str(iris_model), "iris")
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": sum(IRIS_ROWS, [])}]}
    first = backends()
    await first.scale(iris, 2)
    await until(all_ready(first, "iris-1", 2))
    await first.close(stop_replicas=False)
    records = first.replicas()
    assert all(alive(r.pid) for r in records)
    running, dead = records
    os.kill(dead.pid, signal.SIGKILL)
    await until(lambda: not alive(dead.pid))

    second = backends()
    await second.adopt(records, {"iris-1": iris})
    adopted = {s.id: s for s in second.replicas()}
    assert adopted[running.id].pid == running.pid and adopted[running.id].ready
    assert adopted[running.id].restarts == 0 and adopted[running.id].started_at == running.started_at
    [restarted] = await until(lambda: [s for s in second.replicas() if s.id == dead.id and s.ready])
    assert restarted.pid not in (0, dead.pid) and restarted.restarts == 1
    async with httpx.AsyncClient(timeout=10) as client:
        for state in second.replicas():
            answer = await client.post(url_of(state, "/v2/models/iris/infer"), json=body)
            assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [0, 2]

    await second.close(stop_replicas=True)
    assert second.replicas() == []
    assert not alive(running.pid) and not alive(restarted.pid)


async def test_a_new_backend_restarts_running_replicas_started_with_another_spec(
    backends: Backends, iris_model: Path
) -> None:
    iris = spec_of("iris-1", str(iris_model), "iris")
    first = backends()
    await first.scale(iris, 2)
    await until(all_ready(first, "iris-1", 2))
    await first.close(stop_replicas=False)
    same, unknown = first.replicas()
    assert same.spec_digest == unknown.spec_digest == iris.digest

    # The same spec (its environment in another order) is adopted; a record from before digests is restarted.
    second = backends()
    reordered = dataclasses.replace(iris, env=dict(reversed(ENV.items())))
    await second.adopt([same, dataclasses.replace(unknown, spec_digest="")], {"iris-1": reordered})
    adopted = {s.id: s for s in second.replicas()}[same.id]
    assert (adopted.pid, adopted.ready, adopted.restarts) == (same.pid, True, 0)
    [restarted] = await until(lambda: [s for s in second.replicas() if s.id == unknown.id and s.ready])
    assert restarted.pid not in (0, unknown.pid) and restarted.restarts == 1 and not alive(unknown.pid)

    # Another environment (as a transformer's, once the gateway moved): stopped and started with the new spec.
    await second.close(stop_replicas=False)
    moved = dataclasses.replace(iris, env={**ENV, "WHARF_PREDICTOR_URL": "http://127.0.0.1:1"})
    third = backends()
    await third.adopt([s for s in second.replicas() if s.id == same.id], {"iris-1": moved})
    assert not alive(same.pid)
    [replaced] = await until(all_ready(third, "iris-1", 1))
    assert (replaced.id, replaced.restarts, replaced.spec_digest) == (same.id, 1, moved.digest)
    assert replaced.pid not in (0, same.pid)


def _forked_from_template(pid: int) -> bool:
    return b"-m\0wharf.control.backends.zygote\0" in Path(f"/proc/{pid}/cmdline").read_bytes()


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="tells a forked replica by its /proc command line")
async def test_a_replica_forked_from_the_template_serves_is_restarted_and_drains(
    backends: Backends, iris_model: Path
) -> None:
    backend = backends()
    iris = spec_of("iris-1", str(iris_model), "iris")
    body = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": sum(IRIS_ROWS, [])}]}
    await backend.scale(iris, 1)
    [first] = await until(all_ready(backend, "iris-1", 1))
    assert _forked_from_template(first.pid) and os.getsid(first.pid) == first.pid and is_replica_process(first.pid)
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(url_of(first, "/v2/models/iris/infer"), json=body)
    assert answer.json()["outputs"][0]["data"] == [0, 2]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.grpc_port}") as channel:
        ready = await GRPCInferenceServiceStub(channel).ServerReady(pb.ServerReadyRequest(), timeout=10)
    assert ready.ready

    os.kill(first.pid, signal.SIGKILL)
    [second] = await until(lambda: [s for s in backend.replicas() if s.ready and s.pid != first.pid])
    assert (second.restarts, second.last_exit) == (1, -signal.SIGKILL) and _forked_from_template(second.pid)

    await backend.scale(iris, 0)
    await until(lambda: not alive(second.pid))
    log = (backend.home / "logs" / "iris-1" / f"{second.id}.log").read_text()
    assert '"event":"draining"' in log and '"event":"stopped"' in log


async def test_a_replica_starts_as_a_fresh_interpreter_when_the_template_does_not_answer(
    backends: Backends, iris_model: Path
) -> None:
    backend = backends(settings=FAST.model_copy(update={"prewarm_timeout_s": 0.01}))  # it cannot import in time
    await backend.scale(spec_of("iris-1", str(iris_model), "iris"), 2)
    states = await until(all_ready(backend, "iris-1", 2))
    for state in states:
        assert b"wharf.cli\0serve\0" in Path(f"/proc/{state.pid}/cmdline").read_bytes()


async def test_a_replica_with_its_own_thread_settings_starts_as_a_fresh_interpreter(
    backends: Backends, iris_model: Path
) -> None:
    backend = backends()
    await backend.scale(ReplicaSpec("iris-1", "iris", str(iris_model), None, {**ENV, "OMP_NUM_THREADS": "1"}), 1)
    [state] = await until(all_ready(backend, "iris-1", 1))
    assert b"wharf.cli\0serve\0" in Path(f"/proc/{state.pid}/cmdline").read_bytes()
