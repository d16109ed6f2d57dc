"""What happened to each resource, for `wharf describe`: events read from the changes of its status.

`EventRecorder` listens to the store's writes and compares a resource's status before and after each one; what an
operator would want to know becomes an event (`Store.add_event`, which keeps the last `EVENTS_KEPT` of each
resource). Reading the events off the status keeps them true to what the API shows, whoever changed it (an apply,
the autoscaler, a replica's end, an automatic rollback), at no cost to the code that changes it. The rules, in the
order they are applied, for each component of an InferenceService:

- `RevisionCreated`: its latest created revision changed;
- `TrafficMoved`: its traffic split changed (the first split of a new service included);
- `RolledOut`: its latest rolled-out revision changed (a promotion);
- `RolledBack` (Warning): a revision was taken out of traffic, with the reason (a command, an error rate, a p99);
- `ColdStart`: a revision scaled to zero was scaled up; `ScaledToZero`; `Scaled`: the replicas chosen for a
  revision changed otherwise;
then for each replica: `ReplicaCreated`, `ReplicaPending` (Warning, what it waits for), `ReplicaReady`,
`ReplicaRestarted` (Warning, its last error), `ReplicaUnready` (Warning), `ReplicaStopped`; and, for every kind,
`Ready` or `NotReady` (Warning, the condition's message) when the Ready condition changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wharf.control.plan import COMPONENTS
from wharf.control.store import Change, Store

NORMAL, WARNING = "Normal", "Warning"

Event = tuple[str, str, str]  # type, reason, message


class EventRecorder:
    """Records the events of every change the store makes (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.unsubscribe = store.subscribe(self._record)

    def _record(self, change: Change) -> None:
        if change.after is None:  # deleted: its events went with it
            return
        before = change.before.status if change.before else {}
        for type_, reason, message in status_events(before, change.after.status):
            self.store.add_event(change.kind, change.namespace, change.name, type_, reason, message)


def status_events(before: dict[str, Any], after: dict[str, Any]) -> list[Event]:
    """The events a status change makes, in the order of the module docstring."""
    events: list[Event] = []
    for component in COMPONENTS:
        events += _component_events(component, before, after)
        events += _scale_events(_scale(before, component), _scale(after, component))
    events += _replica_events(before.get("replicaStates") or [], after.get("replicaStates") or [])
    events += _ready_events(before, after)
    return events


def _component_events(component: str, before: dict[str, Any], after: dict[str, Any]) -> Iterator[Event]:
    old = (before.get("components") or {}).get(component) or {}
    new = (after.get("components") or {}).get(component) or {}
    if not new:
        return
    created = new.get("latestCreatedRevision")
    if created and created != old.get("latestCreatedRevision"):
        yield NORMAL, "RevisionCreated", f"{component} revision {created} created"
    split = _split(new)
    if split and split != _split(old):
        yield NORMAL, "TrafficMoved", f"{component} traffic: " + ", ".join(f"{r} {p}%" for r, p in split.items())
    rolled_out = new.get("latestRolledoutRevision")
    if old and rolled_out and rolled_out != old.get("latestRolledoutRevision"):
        yield NORMAL, "RolledOut", f"{component} revision {rolled_out} rolled out"
    was, now = _rollout(before, component), _rollout(after, component)
    if now.get("rolled_back") and (now.get("rolled_back"), now.get("rollback_reason")) != (
        was.get("rolled_back"),
        was.get("rollback_reason"),
    ):
        yield (
            WARNING,
            "RolledBack",
            f"{component} revision {now['rolled_back']} rolled back: {now.get('rollback_reason')}",
        )


def _scale_events(before: dict[str, int], after: dict[str, int]) -> Iterator[Event]:
    for revision, replicas in after.items():
        was = before.get(revision)
        if was is None or was == replicas:
            continue
        if was == 0:
            yield NORMAL, "ColdStart", f"{revision} scaled from zero to {replicas} replica(s)"
        elif replicas == 0:
            yield NORMAL, "ScaledToZero", f"{revision} scaled to zero"
        else:
            yield NORMAL, "Scaled", f"{revision} scaled from {was} to {replicas} replicas"


def _replica_events(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> Iterator[Event]:
    old = {r["id"]: r for r in before}
    new = {r["id"]: r for r in after}
    for replica_id, replica in new.items():
        was = old.get(replica_id)
        if was is None:
            yield NORMAL, "ReplicaCreated", f"replica {replica_id} created"
            was = {}
        if replica.get("pending") and replica.get("pending") != was.get("pending"):
            yield WARNING, "ReplicaPending", f"replica {replica_id}: {replica['pending']}"
        if (restarts := replica.get("restarts", 0)) > was.get("restarts", 0):
            why = replica.get("last_error") or "no error kept"
            yield WARNING, "ReplicaRestarted", f"replica {replica_id} restarted ({restarts} in all) after: {why}"
        if replica.get("ready") and not was.get("ready"):
            yield NORMAL, "ReplicaReady", f"replica {replica_id} ready"
        elif was.get("ready") and not replica.get("ready"):
            yield WARNING, "ReplicaUnready", f"replica {replica_id} not ready"
    for replica_id in old.keys() - new.keys():
        yield NORMAL, "ReplicaStopped", f"replica {replica_id} stopped"


def _ready_events(before: dict[str, Any], after: dict[str, Any]) -> Iterator[Event]:
    was, now = _ready(before), _ready(after)
    if now is None or (was is not None and (was["status"], was["message"]) == (now["status"], now["message"])):
        return
    if now["status"] == "True":
        if was is None or was["status"] != "True":
            yield NORMAL, "Ready", "ready"
    elif was is None or was["status"] == "True" or now["message"]:
        yield WARNING, "NotReady", now["message"] or "not ready"


def _ready(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)


def _split(component: dict[str, Any]) -> dict[str, int]:
    return {t["revisionName"]: t["percent"] for t in sorted(component.get("traffic") or [], key=_revision)}


def _revision(traffic: dict[str, Any]) -> str:
    return traffic["revisionName"]


def _rollout(status: dict[str, Any], component: str) -> dict[str, Any]:
    rollout = status.get("rollout") or {}
    if "latest_created" in rollout:  # saved before services had components: the predictor's
        rollout = {"predictor": rollout}
    return rollout.get(component) or {}


def _scale(status: dict[str, Any], component: str) -> dict[str, int]:
    components = (status.get("routing") or {}).get("components") or {}
    return (components.get(component) or {}).get("scale") or {}
