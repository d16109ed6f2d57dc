"""`TrainedModels`: the daemon places each TrainedModel on its parent's replicas and keeps its status.

`sync`, called on each resync pass (once a second), for every parent InferenceService that TrainedModels name:
1. the parent's facts (`Parent`): whether it exists, is ready, is a multi-model server (KServe's IsMMSPredictor: a
   model format and no storageUri), the format its runtime serves, one replica's memory budget for its models
   (`spec.trainedmodel.replica_budget`) and the revisions it routes to (a canary's and the stable one's alike);
2. a TrainedModel is admitted when the parent is a multi-model server, its framework is the parent's format, and
   its declared memory fits one replica's whole budget (a replica evicts least-recently-used models to make room,
   so the sum over models may exceed it, unlike KServe's admission check); one that is not is registered nowhere
   and its status says why;
3. every ready replica of those revisions is asked for its repository index (`POST /v2/repository/index`) and its
   memory summary (`GET /v2/repository/memory`), and every `LATENCY_EVERY_PASSES` passes for its mean model load
   time (its `/metrics`); an admitted model missing from a replica's index (a replica that
   started later, or a daemon restarted) is registered there (`POST /v2/repository/models/{name}/load`, lazy: the
   replica loads it on its first request); one registered with another storageUri is registered again; one no
   admitted TrainedModel names any more (deleted) is unloaded (`.../unload`, which waits for its requests);
4. each model's request rate (the growth of the indexes' `requests` counters) places it (`model_placement.place`);
   the placements go to the gateway with the route table (`Reconciler.model_placements`), and what each replica
   holds to the parent's status (`multiModel`, through `Reconciler.multi_model`);
5. each TrainedModel's status: KServe's conditions (InferenceServiceReady, IsMMSPredictor,
   MemoryResourceAvailable, Ready; Ready also needs it registered on a ready replica and not failing to load),
   `url` (the parent's URL and `/v1/models/{name}`, `/v2/models/{name}` for a v2 parent) and Wharf's `loadedOn` (the
   replicas with it in memory). A status is written only when it changed.

Costs per pass: one list of the TrainedModels and services from the store, two small HTTP requests per ready replica
of a multi-model parent (its index is one row per model), the registrations that are missing (at most
`MAX_CALLS_PER_PASS` per replica, the rest the next pass) and the statuses of the models that changed (created,
changed, their parent or its ready replicas changed, or their state on a replica), at most `MAX_STATUSES_PER_PASS`
(the rest the next pass), written in one transaction. A pass over 10,000 models of which none changed takes 0.06 s.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from wharf.control.backends.replica import ReplicaState
from wharf.control.kube.objects import timestamp
from wharf.control.model_placement import FAILED, LOADED, ReplicaIndex, place
from wharf.control.plan import ISVC_KIND
from wharf.control.spec.common import parse_quantity
from wharf.control.spec.trainedmodel import BUDGET_ENV, KIND, MODEL_MEMORY_SHARE, replica_budget
from wharf.control.store import Change, Resource, Store
from wharf.gateway.model_routing import ModelPlacement
from wharf.storage.uri import redact

log = logging.getLogger(__name__)
CONDITIONS = ("InferenceServiceReady", "IsMMSPredictor", "MemoryResourceAvailable")
READY = "Ready"
MAX_CALLS_PER_PASS = 256
MAX_STATUSES_PER_PASS = 1_000  # computed and written in one pass (the event loop waits for them)
CALL_TIMEOUT_S = 10.0
_CONCURRENT_CALLS = 16
LATENCY_EVERY_PASSES = 10
#: the model load histogram's sum and count in a replica's metrics
_LOAD_SECONDS = re.compile(r"^wharf_model_load_duration_seconds_(sum|count) (\S+)$", re.M)
_RATE_SMOOTHING = 0.5  # weight of the newest rate in each model's smoothed rate


@dataclass(frozen=True, slots=True)
class Parent:
    """What a TrainedModel's placement needs of its parent InferenceService."""

    namespace: str
    name: str
    exists: bool = False
    ready: bool = False
    multi_model: bool = False
    framework: str | None = None
    budget_bytes: int | None = None
    url: str | None = None
    protocol: str = "v1"
    revisions: tuple[str, ...] = ()


def parent_of(namespace: str, name: str, resource: Resource | None) -> Parent:
    """The facts of the parent `namespace/name` (`resource`: it as stored, None when there is none)."""
    if resource is None:
        return Parent(namespace, name)
    model = (resource.manifest["spec"].get("predictor") or {}).get("model") or {}
    framework = (model.get("modelFormat") or {}).get("name")
    limit = ((model.get("resources") or {}).get("limits") or {}).get("memory")
    try:
        budget = replica_budget(limit, {e["name"]: e.get("value") or "" for e in model.get("env") or []})
    except ValueError:  # refused at apply; a manifest stored by an older Wharf has no budget
        budget = None
    status = resource.status
    ready = any(c.get("type") == READY and c.get("status") == "True" for c in status.get("conditions", []))
    traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
    return Parent(
        namespace,
        name,
        exists=True,
        ready=ready,
        multi_model=framework not in (None, "custom", "huggingface") and not model.get("storageUri"),
        framework=framework,
        budget_bytes=budget,
        url=status.get("url"),
        protocol="v2" if model.get("protocolVersion") in ("v2", "grpc-v2") else "v1",
        revisions=tuple(dict.fromkeys(t["revisionName"] for t in traffic if t.get("revisionName"))),
    )


def admission(spec: Mapping[str, Any], parent: Parent) -> dict[str, tuple[bool, str, str]]:
    """KServe's three conditions of a TrainedModel of `spec` under `parent`: type -> (holds, reason, message)."""
    model = spec["model"]
    if not parent.exists:
        missing = f"InferenceService {parent.namespace}/{parent.name} not found"
        return {kind: (False, "InferenceServiceNotFound", missing) for kind in CONDITIONS}
    found: dict[str, tuple[bool, str, str]] = {
        "InferenceServiceReady": (True, "", "")
        if parent.ready
        else (
            False,
            "InferenceServiceNotReady",
            "Inference Service needs to be ready before Trained Model can be ready",
        )
    }
    if not parent.multi_model:
        found["IsMMSPredictor"] = (
            False,
            "IsNotMMSPredictor",
            f"InferenceService {parent.name}'s predictor is not configured for multi-model serving (it names a"
            " storageUri; a multi-model predictor names a model format and no storageUri)",
        )
    elif parent.framework != model["framework"]:
        found["IsMMSPredictor"] = (
            False,
            "FrameworkNotSupported",
            f"framework {model['framework']!r} is not served by InferenceService {parent.name}, whose runtime"
            f" serves {parent.framework!r}",
        )
    else:
        found["IsMMSPredictor"] = (True, "", "")
    declared = int(parse_quantity(model["memory"]))
    if parent.budget_bytes is not None and declared > parent.budget_bytes:
        found["MemoryResourceAvailable"] = (
            False,
            "MemoryResourceNotAvailable",
            f"the model declares {model['memory']}, more than a replica's whole budget of {parent.budget_bytes}"
            f" bytes (InferenceService {parent.name}'s {BUDGET_ENV}, else {MODEL_MEMORY_SHARE:.0%} of its"
            " predictor's resources.limits.memory)",
        )
    else:
        found["MemoryResourceAvailable"] = (True, "", "")
    return found


def admitted(conditions: Mapping[str, tuple[bool, str, str]]) -> bool:
    """Whether a TrainedModel may be registered: its parent is a multi-model server of its framework, with room."""
    return conditions["IsMMSPredictor"][0] and conditions["MemoryResourceAvailable"][0]


def model_url(parent: Parent, name: str) -> str | None:
    if parent.url is None:
        return None
    return f"{parent.url}/{parent.protocol}/models/{name}"


def trained_model_status(
    before: Mapping[str, Any],
    name: str,
    parent: Parent,
    conditions: Mapping[str, tuple[bool, str, str]],
    registered_on: Iterable[str],
    loaded_on: Iterable[str],
    failure: str | None,
    now: float | None = None,
) -> dict[str, Any]:
    """The status of TrainedModel `name`: KServe's conditions (each one's time is when its status last changed),
    `url` and `address`, and Wharf's `loadedOn`. `failure` is why a replica could not load it."""
    when = timestamp(time.time() if now is None else now)
    registered, loaded = sorted(set(registered_on)), sorted(set(loaded_on))
    every = dict(conditions)
    if not all(holds for holds, _, _ in conditions.values()):
        why = next((reason, message) for holds, reason, message in conditions.values() if not holds)
        every[READY] = (False, *why)
    elif failure is not None:
        every[READY] = (False, "ModelLoadFailed", failure)
    elif not registered:
        every[READY] = (False, "NotRegistered", "waiting for a ready replica of the parent to register the model")
    else:
        every[READY] = (True, "", "")
    previous = {c["type"]: c for c in before.get("conditions", [])}
    shown = []
    for kind, (holds, reason, message) in every.items():
        status = "True" if holds else "False"
        old = previous.get(kind, {})
        condition = {"type": kind, "status": status, "message": message}
        condition["lastTransitionTime"] = old["lastTransitionTime"] if old.get("status") == status else when
        if reason:
            condition["reason"] = reason
        shown.append(condition)
    status: dict[str, Any] = {"conditions": shown, "loadedOn": loaded}
    if (url := model_url(parent, name)) is not None:
        status |= {"url": url, "address": {"url": url}}
    return status


def registration(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The load request that registers a TrainedModel of `spec` on a replica (loaded on its first request)."""
    model = spec["model"]
    return {
        "parameters": {
            "storage_uri": model["storageUri"],
            "model_format": model["framework"],
            "memory": model["memory"],
            "lazy": True,
        }
    }


def replica_changes(
    index: Mapping[str, Mapping[str, Any]], wanted: Mapping[str, Mapping[str, Any]], limit: int = MAX_CALLS_PER_PASS
) -> list[tuple[str, str, dict[str, Any] | None]]:
    """What brings a replica whose repository `index` (model -> row) holds what it holds to the TrainedModels
    `wanted` (name -> spec): (`unload` or `load`, model, load body); at most `limit`, the unloads first. A model
    registered from another storageUri (its TrainedModel changed) is registered again."""
    found: list[tuple[str, str, dict[str, Any] | None]] = [("unload", n, None) for n in index.keys() - wanted.keys()]
    for name, spec in wanted.items():
        row = index.get(name)
        uri = spec["model"]["storageUri"]
        if row is None or row.get("storage_uri") not in (None, uri) and row["storage_uri"] != redact(uri):
            found.append(("load", name, registration(spec)))
    return found[:limit]


@dataclass(slots=True)
class _Rates:
    """Each model's smoothed request rate, from the growth of the replicas' `requests` counters."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (replica, model) -> requests last seen
    rates: dict[str, float] = field(default_factory=dict)
    at: float | None = None

    def observe(self, indexes: Mapping[str, Mapping[str, Mapping[str, Any]]], now: float) -> None:
        counts = {(rid, m): int(row.get("requests") or 0) for rid, rows in indexes.items() for m, row in rows.items()}
        if self.at is not None and now > self.at:
            grown: dict[str, int] = {}
            for key, count in counts.items():
                grown[key[1]] = grown.get(key[1], 0) + max(0, count - self.counts.get(key, count))
            elapsed = now - self.at
            self.rates = {
                m: _RATE_SMOOTHING * grown.get(m, 0) / elapsed + (1 - _RATE_SMOOTHING) * self.rates.get(m, 0.0)
                for m in {*grown, *self.rates}
                if grown.get(m) or self.rates.get(m, 0.0) > 0.01
            }
        self.counts, self.at = counts, now


class TrainedModels:
    """The daemon's placement of TrainedModels (the module docstring)."""

    def __init__(self, store: Store, backend: Any, reconciler: Any, clock: Any = time.monotonic) -> None:
        """`backend` lists replicas (`replicas(revision)`); `reconciler` takes `model_placements` (revision ->
        ModelPlacement) and `multi_model` (namespace/name -> the parent's summary) for the routes and statuses."""
        self.store = store
        self.backend = backend
        self.reconciler = reconciler
        self._clock = clock
        self._rates = _Rates()
        self._passes = 0
        self._load_latency: dict[str, float] = {}  # replica -> mean seconds of its model loads
        self._http: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(_CONCURRENT_CALLS)
        # What the last pass saw, so that a pass computes the statuses of only what changed: the models as stored
        # (kept by the store's changes; None before the first pass), those created or changed since, whether each
        # may be registered, each parent with its ready replicas, and each replica's models' states.
        self._models: dict[tuple[str, str], Resource] | None = None
        self._stale: set[tuple[str, str]] = set()
        self._admitted: dict[tuple[str, str], bool] = {}
        self._seen_parents: dict[tuple[str, str], tuple[Parent, tuple[str, ...]]] = {}
        self._seen_states: dict[str, dict[str, str]] = {}
        store.subscribe(self._heard)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def sync(self) -> None:
        if self._models is None:  # the first pass: every model's status is computed
            self._models = {(r.namespace, r.name): r for r in self.store.list(KIND)}
            self._stale = set(self._models)
        by_parent: dict[tuple[str, str], list[Resource]] = {}
        for tm in self._models.values():
            by_parent.setdefault((tm.namespace, tm.manifest["spec"]["inferenceService"]), []).append(tm)
        services = {(r.namespace, r.name): r for r in self.store.list(ISVC_KIND)}
        parents = {key: parent_of(*key, services.get(key)) for key in by_parent}
        for key, resource in services.items():  # multi-model services without TrainedModels: unloaded, summarised
            if key not in parents and (parent := parent_of(*key, resource)).multi_model:
                parents[key] = parent
        replicas = {key: self._replicas(parent) for key, parent in parents.items() if parent.multi_model}
        read = await self._read([r for rs in replicas.values() for r in rs])
        indexes = {rid: index for rid, (index, _) in read.items()}
        states = {rid: _states(index) for rid, index in indexes.items()}
        moved = _moved(self._seen_states, states)
        self._rates.observe(indexes, self._clock())
        placements: dict[str, ModelPlacement] = {}
        summaries: dict[str, dict[str, Any]] = {}
        calls = []
        statuses: list[tuple[str, str, dict[str, Any]]] = []
        computed, done, later = 0, set[tuple[str, str]](), set[tuple[str, str]]()
        for key, parent in parents.items():
            tms = by_parent.get(key, [])
            ready = [r for r in replicas.get(key, []) if r.id in read]
            seen = (parent, tuple(r.id for r in ready))
            again = tms if self._seen_parents.get(key) != seen else [
                tm for tm in tms if (tm.namespace, tm.name) in self._stale or tm.name in moved
            ]  # fmt: skip
            self._seen_parents[key] = seen
            shown_indexes = [indexes[r.id] for r in ready]
            verdicts = {tm.name: admission(tm.manifest["spec"], parent) for tm in again}  # all: what may register
            for tm in again:
                self._admitted[(tm.namespace, tm.name)] = admitted(verdicts[tm.name])
            room = max(0, MAX_STATUSES_PER_PASS - computed)
            later.update((tm.namespace, tm.name) for tm in again[room:])  # their statuses: the next pass
            computed += len(again[:room])
            done.update((tm.namespace, tm.name) for tm in again[:room])
            for tm in again[:room]:
                status = _status(tm, parent, verdicts[tm.name], shown_indexes, ready)
                if _comparable(status) != _comparable(tm.status):
                    statuses.append((tm.namespace, tm.name, status))
            wanted = {tm.name: tm for tm in tms if self._admitted.get((tm.namespace, tm.name))}
            for replica in ready:
                calls += self._changes(replica, indexes[replica.id], wanted)
            for revision in parent.revisions if parent.multi_model else ():
                shown = [ReplicaIndex(r.id, states[r.id]) for r in ready if r.revision == revision]
                placements[revision] = ModelPlacement(place(wanted, shown, self._rates.rates))
            if parent.multi_model:
                summaries[f"{key[0]}/{key[1]}"] = _summary(parent, ready, read)
        self._stale = (self._stale - done) | later  # those changed while this pass read the replicas stay
        self._seen_states = states
        self._seen_parents = {key: seen for key, seen in self._seen_parents.items() if key in parents}
        self.store.set_statuses(KIND, statuses)  # one transaction, however many changed
        self.reconciler.model_placements = placements
        self.reconciler.multi_model = summaries
        if calls:
            await asyncio.gather(*calls)

    def _heard(self, change: Change) -> None:
        """Keep the models as stored; one created or whose spec changed has its status computed at the next pass."""
        if change.kind != KIND or self._models is None:
            return
        key = (change.namespace, change.name)
        if change.after is None:
            self._models.pop(key, None)
            self._admitted.pop(key, None)
            return
        self._models[key] = change.after
        if change.before is None or change.before.manifest != change.after.manifest:
            self._stale.add(key)

    def _replicas(self, parent: Parent) -> list[ReplicaState]:
        return [r for revision in parent.revisions for r in self.backend.replicas(revision) if r.ready]

    def _changes(
        self, replica: ReplicaState, index: Mapping[str, Mapping[str, Any]], wanted: Mapping[str, Resource]
    ) -> list[Any]:
        """The calls that bring `replica`'s registrations to `wanted`."""
        specs = {name: tm.manifest["spec"] for name, tm in wanted.items()}
        return [
            self._call(replica, f"/v2/repository/models/{name}/{verb}", body)
            for verb, name, body in replica_changes(index, specs)
        ]

    async def _read(self, replicas: list[ReplicaState]) -> dict[str, tuple[dict[str, dict[str, Any]], dict[str, Any]]]:
        """Each replica's index (model -> row) and memory summary (with, from its metrics every
        `LATENCY_EVERY_PASSES` passes, `load_latency_s`: the mean of its loads); a replica that does not answer is
        left out."""
        self._passes += 1
        if self._passes % LATENCY_EVERY_PASSES == 1:
            latencies = await asyncio.gather(*(self._read_latency(r) for r in replicas))
            self._load_latency = {r.id: mean for r, mean in zip(replicas, latencies, strict=True) if mean is not None}
        answers = await asyncio.gather(*(self._read_one(r) for r in replicas))
        for replica, answer in zip(replicas, answers, strict=True):
            if answer is not None and replica.id in self._load_latency:
                answer[1]["load_latency_s"] = self._load_latency[replica.id]
        return {r.id: answer for r, answer in zip(replicas, answers, strict=True) if answer is not None}

    async def _read_one(self, replica: ReplicaState) -> tuple[dict[str, dict[str, Any]], dict[str, Any]] | None:
        http = self._session()
        base = f"http://{replica.host}:{replica.http_port}/v2/repository"
        try:
            async with self._limit:
                async with http.post(f"{base}/index", data=b"{}") as answer:
                    rows = orjson.loads(await answer.read()) if answer.status == 200 else None
                async with http.get(f"{base}/memory") as answer:
                    memory = orjson.loads(await answer.read()) if answer.status == 200 else {}
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as e:
            log.debug("a replica's index could not be read", extra={"replica": replica.id, "reason": str(e)})
            return None
        if not isinstance(rows, list):
            return None
        return {row["name"]: row for row in rows if isinstance(row, dict) and "name" in row}, memory

    async def _read_latency(self, replica: ReplicaState) -> float | None:
        """The mean seconds of a replica's model loads, from its Prometheus metrics (None before its first)."""
        try:
            async with self._limit, self._session().get(f"http://{replica.host}:{replica.http_port}/metrics") as answer:
                text = (await answer.read()).decode(errors="replace") if answer.status == 200 else ""
        except (aiohttp.ClientError, TimeoutError):
            return None
        found = dict(_LOAD_SECONDS.findall(text))
        try:
            count, total = float(found["count"]), float(found["sum"])
        except (KeyError, ValueError):
            return None
        return total / count if count else None

    async def _call(self, replica: ReplicaState, path: str, body: dict[str, Any] | None) -> None:
        http = self._session()
        try:
            async with self._limit:
                async with http.post(f"http://{replica.host}:{replica.http_port}{path}", json=body or {}) as answer:
                    if answer.status >= 400:
                        text = (await answer.read())[:500].decode(errors="replace")
                        log.warning(
                            "a replica refused a model change",
                            extra={"replica": replica.id, "path": path, "status": answer.status, "answer": text},
                        )
        except (aiohttp.ClientError, TimeoutError) as e:  # the next pass tries again
            log.warning("a model change did not reach its replica", extra={"replica": replica.id, "reason": str(e)})

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S))
        return self._http


def _status(
    tm: Resource,
    parent: Parent,
    verdict: Mapping[str, tuple[bool, str, str]],
    indexes: list[Mapping[str, Mapping[str, Any]]],
    ready: list[ReplicaState],
) -> dict[str, Any]:
    """TrainedModel `tm`'s status, from what the indexes of the parent's `ready` replicas say of it."""
    rows = [(r.id, index[tm.name]) for r, index in zip(ready, indexes, strict=True) if tm.name in index]
    registered = [rid for rid, row in rows if row.get("state") != FAILED]
    loaded = [rid for rid, row in rows if row.get("state") == LOADED]
    failures = [f"{rid}: {row.get('reason') or 'load failed'}" for rid, row in rows if row.get("state") == FAILED]
    failure = "; ".join(failures) if failures and not registered else None
    return trained_model_status(tm.status, tm.name, parent, verdict, registered, loaded, failure)


def _moved(before: Mapping[str, Mapping[str, str]], now: Mapping[str, Mapping[str, str]]) -> set[str]:
    """The models whose state changed on some replica (or that came or went with one) between two passes."""
    moved: set[str] = set()
    for replica in before.keys() | now.keys():
        old, new = before.get(replica, {}), now.get(replica, {})
        if old != new:
            moved.update(m for m in old.keys() | new.keys() if old.get(m) != new.get(m))
    return moved


def _states(index: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    return {name: str(row.get("state")) for name, row in index.items()}


def _summary(
    parent: Parent, ready: list[ReplicaState], read: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> dict[str, Any]:
    """What the parent's replicas hold, for its status (`multiModel`) and `wharf describe`."""
    replicas = {}
    for replica in ready:
        index, memory = read[replica.id]
        replicas[replica.id] = {
            "revision": replica.revision,
            "loaded": sorted(name for name, row in index.items() if row.get("state") == LOADED),
            "registered": len(index),
            "usedBytes": memory.get("used_bytes"),
            "budgetBytes": memory.get("budget_bytes"),
            "loads": memory.get("loads"),
            "evictions": memory.get("evictions"),
            "loadFailures": memory.get("load_failures"),
            "hitRatio": memory.get("hit_ratio"),
            "loadLatencyMs": None if (mean := memory.get("load_latency_s")) is None else round(1000 * mean, 1),
        }
    return {"budgetBytes": parent.budget_bytes, "replicas": replicas}


def _comparable(status: Mapping[str, Any]) -> Any:
    """A status without its conditions' times (those only change with their status)."""
    return {
        **status,
        "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions", [])],
    }
