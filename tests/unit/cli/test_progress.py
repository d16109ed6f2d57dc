"""Waiting on resources: durations, `--for`, and the live line `apply --wait` shows for a resource."""

from __future__ import annotations

import pytest

from wharf.cli.progress import Wanted, duration, progress, shown


def test_durations_as_kubectl_takes_them() -> None:
    assert [duration(t) for t in ("60s", "1m30s", "2m", "500ms", "1h", "12", "0.5")] == [
        60,
        90,
        120,
        0.5,
        3600,
        12,
        0.5,
    ]
    for bad in ("", "5x", "1m 30s", "-3"):
        with pytest.raises(ValueError):
            duration(bad)
    assert [shown(s) for s in (60, 90, 3.5, 300)] == ["1m", "1m30s", "3.5s", "5m"]


def _service(generation: int = 1, observed: int = 1, **status: object) -> dict:
    return {"metadata": {"generation": generation}, "status": {"observedGeneration": observed, **status}}


def _conditions(ready: str, message: str = "", predictor: str = "") -> list[dict]:
    return [
        {"type": "PredictorReady", "status": "False" if predictor else "True", "message": predictor},
        {"type": "Ready", "status": ready, "message": message},
    ]


def test_wanted_conditions_hold_only_for_the_current_generation() -> None:
    ready = Wanted.parse("condition=Ready")
    assert ready == Wanted("Ready", "True") and Wanted.parse("condition=ready=False") == Wanted("ready", "False")
    assert ready.met(_service(conditions=_conditions("True")))
    assert not ready.met(_service(generation=2, conditions=_conditions("True")))  # the status of the spec before
    assert Wanted.parse("condition=ready=False").met(_service(conditions=_conditions("False")))
    assert Wanted.parse("delete").met(None) and not ready.met(None)
    with pytest.raises(ValueError, match="--for=condition=NAME"):
        Wanted.parse("ready")


def test_the_live_line_says_where_a_service_stands() -> None:
    waiting = "waiting for a ready replica of who-predictor-00001"
    assert progress(_service(conditions=_conditions("False", waiting))) == (False, waiting)
    starting = [{"id": "a", "ready": True}, {"id": "b", "ready": False}]
    assert progress(_service(conditions=_conditions("False", waiting), replicaStates=starting)) == (
        False,
        "starting replicas: 1/2 ready",
    )
    failing = _conditions("False", waiting, "exited before serving (status 2):\n{...}\nwharf serve: OSError: gone")
    assert progress(_service(conditions=failing, replicaStates=starting)) == (
        False,
        "exited before serving (status 2): ... wharf serve: OSError: gone",
    )
    assert progress(_service(conditions=_conditions("True"), url="http://who")) == (True, "ready at http://who")
