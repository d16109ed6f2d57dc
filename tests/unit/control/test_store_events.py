"""The store's change notices and event log, and the events read off status changes."""

from __future__ import annotations

from pathlib import Path

from wharf.control.events import EventRecorder, status_events
from wharf.control.store import EVENTS_KEPT, Change, Store

KIND = "InferenceService"


def test_listeners_see_each_write_with_the_resource_before_and_after(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    seen: list[Change] = []
    unsubscribe = store.subscribe(seen.append)
    store.put(KIND, "default", "iris", {"spec": {"a": 1}})
    store.put(KIND, "default", "iris", {"spec": {"a": 1}})  # unchanged: no notice
    store.set_status(KIND, "default", "iris", {"url": "u"})
    store.set_status(KIND, "default", "gone", {"url": "u"})  # no such resource: no notice
    store.delete(KIND, "default", "iris")
    assert [(c.before is None, c.after is None) for c in seen] == [(True, False), (False, False), (False, True)]
    assert seen[1].before.status == {} and seen[1].after.status == {"url": "u"}  # type: ignore[union-attr]
    unsubscribe()
    store.put(KIND, "default", "iris", {"spec": {"a": 2}})
    assert len(seen) == 3


def test_a_failing_listener_does_not_undo_the_write(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")

    def broken(_: Change) -> None:
        raise RuntimeError("boom")

    store.subscribe(broken)
    store.put(KIND, "default", "iris", {"spec": {}})
    assert store.get(KIND, "default", "iris") is not None


def test_events_repeat_as_a_count_keep_the_last_ones_and_go_with_their_resource(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    store.put(KIND, "default", "iris", {"spec": {}})
    store.add_event(KIND, "default", "iris", "Warning", "NotReady", "down")
    store.add_event(KIND, "default", "iris", "Warning", "NotReady", "down")
    [event] = store.events(KIND, "default", "iris")
    assert (event.reason, event.count) == ("NotReady", 2) and event.last >= event.first
    for i in range(EVENTS_KEPT + 5):
        store.add_event(KIND, "default", "iris", "Normal", "Scaled", f"scaled {i}")
    store.add_event(KIND, "default", "other", "Normal", "Ready", "ready")
    kept = store.events(KIND, "default", "iris")
    assert (
        len(kept) == EVENTS_KEPT and kept[-1].message == f"scaled {EVENTS_KEPT + 4}" and kept[0].message == "scaled 5"
    )
    store.delete(KIND, "default", "iris")
    assert store.events(KIND, "default", "iris") == [] and len(store.events(KIND, "default", "other")) == 1


def _status(traffic: dict[str, int], *, ready: bool = True, message: str = "", **extra: object) -> dict:
    latest = max(traffic)
    return {
        "conditions": [{"type": "Ready", "status": str(ready), "message": message}],
        "components": {
            "predictor": {
                "latestCreatedRevision": latest,
                "latestRolledoutRevision": extra.pop("rolled_out", min(traffic)),
                "traffic": [{"revisionName": r, "percent": p} for r, p in traffic.items()],
            }
        },
        **extra,
    }


def test_a_rollout_reads_as_revision_traffic_rollback_and_readiness_events() -> None:
    first = _status({"r1": 100}, ready=False, message="waiting for a ready replica of r1")
    assert status_events({}, first) == [
        ("Normal", "RevisionCreated", "predictor revision r1 created"),
        ("Normal", "TrafficMoved", "predictor traffic: r1 100%"),
        ("Warning", "NotReady", "waiting for a ready replica of r1"),
    ]
    serving = _status({"r1": 100})
    assert status_events(first, serving) == [("Normal", "Ready", "ready")]
    canary = _status({"r1": 90, "r2": 10})
    assert status_events(serving, canary) == [
        ("Normal", "RevisionCreated", "predictor revision r2 created"),
        ("Normal", "TrafficMoved", "predictor traffic: r1 90%, r2 10%"),
    ]
    rollout = {"predictor": {"rolled_back": "r2", "rollback_reason": "canary r2 failed 50% of its requests"}}
    back = _status({"r1": 100, "r2": 0}, rollout=rollout)
    back["components"]["predictor"]["traffic"].pop()
    assert status_events(canary, back) == [
        ("Normal", "TrafficMoved", "predictor traffic: r1 100%"),
        ("Warning", "RolledBack", "predictor revision r2 rolled back: canary r2 failed 50% of its requests"),
    ]
    promoted = _status({"r2": 100}, rolled_out="r2")
    assert ("Normal", "RolledOut", "predictor revision r2 rolled out") in status_events(canary, promoted)


def test_replica_and_scale_events() -> None:
    def status(replicas: list[dict], scale: dict[str, int]) -> dict:
        return {"replicaStates": replicas, "routing": {"components": {"predictor": {"scale": scale}}}}

    idle = status([], {"r1": 0})
    starting = status([{"id": "a", "ready": False, "restarts": 0}], {"r1": 1})
    assert status_events(idle, starting) == [
        ("Normal", "ColdStart", "r1 scaled from zero to 1 replica(s)"),
        ("Normal", "ReplicaCreated", "replica a created"),
    ]
    up = status([{"id": "a", "ready": True, "restarts": 0}], {"r1": 3})
    assert status_events(starting, up) == [
        ("Normal", "Scaled", "r1 scaled from 1 to 3 replicas"),
        ("Normal", "ReplicaReady", "replica a ready"),
    ]
    ended = status([{"id": "a", "ready": False, "restarts": 1, "last_error": "exited (status 1):\nboom"}], {"r1": 3})
    assert status_events(up, ended) == [
        ("Warning", "ReplicaRestarted", "replica a restarted (1 in all) after: exited (status 1):\nboom"),
        ("Warning", "ReplicaUnready", "replica a not ready"),
    ]
    assert status_events(ended, status([], {"r1": 0})) == [
        ("Normal", "ScaledToZero", "r1 scaled to zero"),
        ("Normal", "ReplicaStopped", "replica a stopped"),
    ]


def test_the_recorder_keeps_the_events_of_each_status_write(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    EventRecorder(store)
    store.put(KIND, "default", "iris", {"spec": {}})
    store.set_status(KIND, "default", "iris", _status({"r1": 100}))
    assert [e.reason for e in store.events(KIND, "default", "iris")] == ["RevisionCreated", "TrafficMoved", "Ready"]
