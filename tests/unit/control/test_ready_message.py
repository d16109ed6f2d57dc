"""What Ready's message says while a component is not serving: a replica's error (its last one, or its back-off),
as the component's own condition does; a starting replica's progress only in the component's condition."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wharf.control.backends import ReplicaState

from .test_reconciler_limits import Backend, controller, isvc, messages, status

REVISION = "slow-predictor-00001"
LOAD_ERROR = "exited before serving (status 2):\nwharf serve: could not fetch http://h/model.json: FileNotFoundError"


def starting(last_error: str | None = None, progress: str | None = None) -> ReplicaState:
    """A replica of REVISION not ready yet, with its last error and its progress."""
    restarts, last_exit = (1, 2) if last_error else (0, None)
    return ReplicaState(
        f"{REVISION}-ab", REVISION, 0, 0, 0, False, restarts, last_exit, 0.0, last_error, progress=progress
    )


@pytest.fixture
def backend() -> Backend:
    return Backend()


def test_ready_carries_the_replicas_error(tmp_path: Path, backend: Backend) -> None:
    control = controller(tmp_path, backend)
    backend.broken[REVISION] = starting(last_error=LOAD_ERROR)
    asyncio.run(control.apply(isvc("slow", 1)))
    shown = messages(control, "slow")
    assert shown["PredictorReady"] == shown["Ready"] == LOAD_ERROR


def test_a_download_under_way_shows_in_the_components_condition(tmp_path: Path, backend: Backend) -> None:
    control = controller(tmp_path, backend)
    backend.broken[REVISION] = starting(progress="downloading model 40% of 1.2 GB")
    asyncio.run(control.apply(isvc("slow", 1)))
    shown = messages(control, "slow")
    assert shown["PredictorReady"] == "downloading model 40% of 1.2 GB"
    assert shown["Ready"] == f"waiting for a ready replica of {REVISION}"  # no event for each step of a download
    [replica] = status(control, "slow")["replicaStates"]
    assert replica["progress"] == "downloading model 40% of 1.2 GB"


def test_an_error_comes_before_the_progress_of_a_restarted_replica(tmp_path: Path, backend: Backend) -> None:
    control = controller(tmp_path, backend)
    backend.broken[REVISION] = starting(last_error=LOAD_ERROR, progress="downloading model 10% of 1.2 GB")
    asyncio.run(control.apply(isvc("slow", 1)))
    assert messages(control, "slow")["PredictorReady"] == LOAD_ERROR
