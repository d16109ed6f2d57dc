"""What keeps the control plane's own load bounded: the machine's replica cap, reasons in the status for replicas
that back off, and replica changes folded into few passes. A real store, a backend that starts nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from wharf.control.backends import ReplicaSpec, ReplicaState
from wharf.control.controller import Controller
from wharf.control.plan import ISVC_KIND

from .fakes import control_plane


class Backend:
    """Replicas as plain records: `scale` makes them (ready at once unless `broken`), nothing runs."""

    def __init__(self) -> None:
        self.states: dict[str, list[ReplicaState]] = {}
        self.scale_calls = 0
        self.broken: dict[str, ReplicaState] = {}  # revision -> how each of its replicas stands

    def replicas(self, revision: str | None = None) -> list[ReplicaState]:
        return [s for name, states in self.states.items() if revision in (None, name) for s in states]

    async def scale(self, spec: ReplicaSpec, replicas: int) -> None:
        self.scale_calls += 1
        await asyncio.sleep(0)  # a real backend's scale is a coroutine too
        states = self.states.setdefault(spec.revision, [])
        del states[replicas:]
        for i in range(len(states), replicas):
            ready = ReplicaState(f"{spec.revision}-{i}", spec.revision, 100 + i, 9000 + i, 9500 + i, True, 0, None, 0.0)
            states.append(self.broken.get(spec.revision) or ready)

    async def remove(self, revision: str) -> None:
        self.states.pop(revision, None)

    def failing(self, revision: str) -> str | None:
        return None


def isvc(name: str, min_replicas: int) -> str:
    return (
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        f"metadata: {{name: {name}}}\n"
        f"spec:\n  predictor:\n    minReplicas: {min_replicas}\n    model:\n      modelFormat: {{name: custom}}\n"
        "      storageUri: models:WhoAmI\n"
    )


@pytest.fixture
def backend() -> Backend:
    return Backend()


def controller(tmp_path: Path, backend: Backend, max_replicas: int = 64) -> Controller:
    return control_plane(tmp_path, backend, max_replicas=max_replicas)


def status(controller: Controller, name: str) -> dict[str, Any]:
    resource = controller.store.get(ISVC_KIND, "default", name)
    assert resource is not None
    return resource.status


def messages(controller: Controller, name: str) -> dict[str, str]:
    return {c["type"]: c["message"] for c in status(controller, name)["conditions"]}


def test_the_machine_runs_no_more_replicas_than_its_cap_and_says_who_got_fewer(
    tmp_path: Path, backend: Backend
) -> None:
    control = controller(tmp_path, backend, max_replicas=3)

    async def scenario() -> None:
        await control.apply(isvc("first", 2))
        await control.apply(isvc("second", 2))
        assert {name: len(states) for name, states in backend.states.items()} == {
            "first-predictor-00001": 2,
            "second-predictor-00001": 1,
        }
        expected = (
            "replica cap reached: second-predictor-00001 runs 1 of the 2 replicas it wants"
            " (this machine runs at most 3: WHARF_MAX_REPLICAS)"
        )
        assert messages(control, "second") == {"PredictorReady": expected, "IngressReady": "", "Ready": expected}
        assert messages(control, "first")["Ready"] == ""
        await control.reconciler.resync()  # stable: nobody loses a replica it has
        assert len(backend.replicas()) == 3 and len(backend.replicas("first-predictor-00001")) == 2

        await control.delete(ISVC_KIND, "default", "first")  # room again
        await control.reconciler.reconcile()
        assert len(backend.replicas("second-predictor-00001")) == 2
        assert messages(control, "second")["Ready"] == ""

    asyncio.run(scenario())


def test_a_revision_left_no_room_waits_with_the_reason(tmp_path: Path, backend: Backend) -> None:
    control = controller(tmp_path, backend, max_replicas=1)

    async def scenario() -> None:
        await control.apply(isvc("first", 1))
        await control.apply(isvc("second", 1))
        assert backend.replicas("second-predictor-00001") == []
        ready = next(c for c in status(control, "second")["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False"
        assert ready["message"].startswith("replica cap reached: second-predictor-00001 runs 0 of the 1")

    asyncio.run(scenario())


def test_a_replica_backing_off_says_so_in_the_status(tmp_path: Path, backend: Backend) -> None:
    control = controller(tmp_path, backend)
    backend.broken["crashing-predictor-00001"] = ReplicaState(
        "crashing-predictor-00001-ab", "crashing-predictor-00001", 0, 0, 0, False, 3, 1, 0.0,
        "exited (status 1):\nImportError: no module named torch", backoff_s=40.0,
    )  # fmt: skip

    async def scenario() -> None:
        await control.apply(isvc("crashing", 1))

    asyncio.run(scenario())
    assert messages(control, "crashing")["PredictorReady"] == (
        "CrashLoopBackOff: back-off 40 s restarting replica crashing-predictor-00001-ab: exited (status 1):\n"
        "ImportError: no module named torch"
    )
    [state] = status(control, "crashing")["replicaStates"]
    assert state["backoff_s"] == 40.0 and state["restarts"] == 3


def test_full_passes_asked_for_together_are_folded_into_one(tmp_path: Path, backend: Backend) -> None:
    control = controller(tmp_path, backend)

    async def scenario() -> None:
        await control.apply(isvc("a", 1))
        await control.apply(isvc("b", 1))
        backend.scale_calls = 0
        running = asyncio.create_task(control.reconciler.reconcile())
        for _ in range(3):
            await asyncio.sleep(0)  # until it holds the lock
        # A storm of replica changes meanwhile: each asks for a full pass.
        await asyncio.gather(running, *(control.reconciler.reconcile() for _ in range(50)))
        assert backend.scale_calls == 2 * 2  # the pass running and one more, over both services

    asyncio.run(scenario())


def test_a_folded_pass_still_sees_what_changed_after_the_running_one_began(tmp_path: Path, backend: Backend) -> None:
    control = controller(tmp_path, backend)

    async def scenario() -> None:
        await control.apply(isvc("a", 1))
        running = asyncio.create_task(control.reconciler.reconcile())
        await asyncio.sleep(0)  # it holds the lock now
        [state] = backend.states["a-predictor-00001"]
        backend.states["a-predictor-00001"] = [dataclasses.replace(state, ready=False, last_error="exited")]
        await asyncio.gather(running, control.reconciler.reconcile())
        assert messages(control, "a")["PredictorReady"] == "exited"

    asyncio.run(scenario())
