"""The reconciler: turns applied InferenceServices into revisions, replicas and routes.

For each service it keeps KServe's rollout bookkeeping in the status (latest created / ready / rolled-out and
previously rolled-out revisions), decides the traffic split (canary, promotion, rollback), asks the backend for
replicas of every revision that takes traffic (or shadow traffic), and hands the gateway a fresh route table. It
runs on events (apply, delete, a replica's change) and on a periodic resync that records replicas for adoption
and rolls back a canary whose error rate or p99 latency crosses the service's thresholds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from wharf.control.backends import LocalBackend, ReplicaSpec, ReplicaState
from wharf.control.graph_plan import GRAPH_KIND, graph_route
from wharf.control.metrics import ControlMetrics
from wharf.control.plan import ISVC_KIND, PredictorPlan, predictor_plan
from wharf.control.scaling import RevisionScaling
from wharf.control.store import Resource, RevisionRecord, Store
from wharf.gateway import Gateway
from wharf.gateway.routes import Graph, Replica, Revision, RouteTable, Service

log = logging.getLogger(__name__)
PREDICTOR = "predictor"
T = TypeVar("T")
MIN_REQUESTS_FOR_ROLLBACK = 20  # fewer requests in the window say too little about a canary


@dataclass(frozen=True, slots=True)
class Rollout:
    """A component's rollout bookkeeping, as KServe's status names it, plus a revision taken out of traffic."""

    latest_created: str
    latest_rolled_out: str
    previous_rolled_out: str | None = None
    rolled_back: str | None = None
    rollback_reason: str | None = None

    @staticmethod
    def from_status(status: dict[str, Any]) -> Rollout | None:
        saved = status.get("rollout")
        return Rollout(**saved) if saved else None

    def advance(self, latest: str, canary_percent: int | None) -> Rollout:
        """Where the rollout stands once `latest` is the newest revision and the spec asks for `canary_percent`."""
        rolled_back = self.rolled_back if self.rolled_back == latest else None
        stable, before = self.latest_rolled_out, self.previous_rolled_out
        if canary_percent is None and latest != stable and rolled_back is None:  # promoted
            stable, before = latest, stable
        return Rollout(latest, stable, before, rolled_back, self.rollback_reason if rolled_back else None)

    def roll_back(self, reason: str) -> Rollout:
        """Out of traffic with the latest revision; once promoted, back to the revision rolled out before it."""
        if self.latest_created == self.latest_rolled_out and self.previous_rolled_out:
            return Rollout(self.latest_created, self.previous_rolled_out, None, self.latest_created, reason)
        return dataclasses.replace(self, rolled_back=self.latest_created, rollback_reason=reason)

    def traffic(self, canary_percent: int | None) -> dict[str, int]:
        """Revision -> percent of requests."""
        latest, stable = self.latest_created, self.latest_rolled_out
        if latest == stable or self.rolled_back == latest:
            return {stable: 100}
        percent = 100 if canary_percent is None else canary_percent
        return {name: share for name, share in ((latest, percent), (stable, 100 - percent)) if share > 0}

    @property
    def canary(self) -> str | None:
        """The revision under trial: created, not rolled out, not rolled back."""
        latest = self.latest_created
        return latest if latest != self.latest_rolled_out and latest != self.rolled_back else None


class Reconciler:
    def __init__(
        self, store: Store, backend: LocalBackend, gateway: Gateway, domain: str, stats_window_s: float, grace_s: float
    ) -> None:
        self.store = store
        self.backend = backend
        self.gateway = gateway
        self.domain = domain
        self.stats_window_s = stats_window_s
        self.metrics = ControlMetrics()
        self.scaling = RevisionScaling(grace_s, self.metrics)
        self._lock = asyncio.Lock()
        # Parsed once per version of a resource: the resync reads every resource each second.
        self._plans: dict[tuple[str, str, float, int], PredictorPlan] = {}
        self._graphs: dict[tuple[str, str, float, int], Graph] = {}

    def _plan(self, resource: Resource) -> PredictorPlan:
        return _cached(self._plans, resource, lambda: predictor_plan(resource.manifest))

    def _graph(self, resource: Resource) -> Graph:
        return _cached(
            self._graphs, resource, lambda: graph_route(resource.namespace, resource.name, resource.manifest)
        )

    async def reconcile(self, namespace: str | None = None, name: str | None = None) -> None:
        """Bring one service (or, without a name, every service) to its spec, then prune and publish routes."""
        async with self._lock:
            for resource in self.store.list(ISVC_KIND):
                if name is None or (resource.namespace, resource.name) == (namespace, name):
                    await self._reconcile(resource)
            await self._prune()
            self._graph_statuses()
            self._publish()

    async def rollback(self, namespace: str, name: str, reason: str) -> None:
        async with self._lock:
            resource = self.store.get(ISVC_KIND, namespace, name)
            rollout = Rollout.from_status(resource.status) if resource else None
            if resource is None or rollout is None:
                return
            self._save_rollout(resource, rollout.roll_back(reason))
        await self.reconcile(namespace, name)

    async def resync(self) -> None:
        """The periodic pass: load is sampled for the autoscalers, canaries are judged, statuses and routes follow
        replica health, and replicas are recorded for adoption."""
        self._sample_load()
        for resource in self.store.list(ISVC_KIND):
            reason = self._judge_canary(resource)
            if reason:
                log.warning("rolling back a canary", extra={"service": resource.name, "reason": reason})
                await self.rollback(resource.namespace, resource.name, reason)
        await self.reconcile()
        self.store.save_replicas({s.id: (s.revision, dataclasses.asdict(s)) for s in self.backend.replicas()})

    async def demand(self, revision: str) -> None:
        """Requests wait in the gateway for `revision`, which has no ready replica: scale it up now."""
        for resource in self.store.list(ISVC_KIND):
            if revision in _routed(resource.status):
                self.scaling.demanded(revision, self._plan(resource).scaling)
                await self.reconcile(resource.namespace, resource.name)

    def _sample_load(self) -> None:
        stats = self.gateway.stats()
        for resource in self.store.list(ISVC_KIND):
            policy = self._plan(resource).scaling
            for revision in set(_routed(resource.status)):
                load = stats.get(revision)
                if load is None:
                    self.scaling.observe_gateway(revision, policy, 0, 0, 0.0)
                else:
                    rps = load.requests / self.stats_window_s
                    self.scaling.observe_gateway(revision, policy, load.in_flight, load.queued, rps)

    def replica_specs(self) -> dict[str, ReplicaSpec]:
        """Every stored revision's replica spec, by revision name (what adoption after a restart needs)."""
        return {
            record.name: _replica_spec(record)
            for resource in self.store.list(ISVC_KIND)
            for record in self.store.revisions(resource.namespace, resource.name, PREDICTOR)
        }

    # -- one service --------------------------------------------------------------------------------------------
    async def _reconcile(self, resource: Resource) -> None:
        plan = self._plan(resource)
        revision, _ = self.store.revision_for(
            resource.namespace, resource.name, PREDICTOR, plan.fingerprint, plan.replica
        )
        saved = Rollout.from_status(resource.status)
        rollout = saved.advance(revision.name, plan.canary_percent) if saved else Rollout(revision.name, revision.name)
        desired = rollout.traffic(plan.canary_percent)
        shadow = _shadow(rollout, desired, plan)
        records = {r.name: r for r in self.store.revisions(resource.namespace, resource.name, PREDICTOR)}
        for name in {*desired, *(shadow[:1] if shadow else ())}:
            ready = sum(replica.ready for replica in self.backend.replicas(name))
            await self.backend.scale(_replica_spec(records[name]), self.scaling.replicas(name, plan.scaling, ready))
        # Traffic moves only to revisions that can take it: until then the split published before stays.
        published = (resource.status.get("routing") or {}).get("traffic")
        takes_traffic = all(self._ready(name) or self.scaling.at_zero(name) for name in desired)
        traffic = desired if published is None or takes_traffic else published
        status = self._status(resource, plan, rollout, traffic, desired, shadow)
        self.store.set_status(ISVC_KIND, resource.namespace, resource.name, status)

    def _ready(self, revision: str) -> bool:
        return any(replica.ready for replica in self.backend.replicas(revision))

    def _save_rollout(self, resource: Resource, rollout: Rollout) -> None:
        self.store.set_status(
            ISVC_KIND, resource.namespace, resource.name, {**resource.status, "rollout": dataclasses.asdict(rollout)}
        )

    def _judge_canary(self, resource: Resource) -> str | None:
        """Why the service's canary must be rolled back, if it must."""
        rollout = Rollout.from_status(resource.status)
        if rollout is None or rollout.canary is None:
            return None
        policy = self._plan(resource).policy
        if not policy.auto_rollback:
            return None
        stats = self.gateway.stats().get(rollout.canary)
        if stats is None or stats.requests < MIN_REQUESTS_FOR_ROLLBACK:
            return None
        limit = policy.rollback_error_rate
        if limit is not None and stats.error_rate > limit:
            return f"canary {rollout.canary} failed {stats.error_rate:.0%} of its requests (limit {limit:.0%})"
        if policy.rollback_p99_ms is not None and stats.p99_ms is not None and stats.p99_ms > policy.rollback_p99_ms:
            return (
                f"canary {rollout.canary} answered at p99 {stats.p99_ms:.0f} ms (limit {policy.rollback_p99_ms:.0f} ms)"
            )
        return None

    async def _prune(self) -> None:
        """Stop replicas of revisions that no service routes to any more."""
        wanted: set[str] = set()
        for resource in self.store.list(ISVC_KIND):
            wanted |= set(_routed(resource.status))
        for revision in {state.revision for state in self.backend.replicas()} - wanted:
            await self.backend.remove(revision)
        self.scaling.forget(wanted)

    def _status(
        self,
        resource: Resource,
        plan: PredictorPlan,
        rollout: Rollout,
        traffic: dict[str, int],
        desired: dict[str, int],
        shadow: tuple[str, int] | None,
    ) -> dict[str, Any]:
        states = {name: self.backend.replicas(name) for name in {*traffic, *desired, *(shadow[:1] if shadow else ())}}
        ready = {
            name for name, replicas in states.items() if any(r.ready for r in replicas) or self.scaling.at_zero(name)
        }
        previous = resource.status.get("components", {}).get(PREDICTOR, {})
        latest_ready = (
            rollout.latest_created if rollout.latest_created in ready else previous.get("latestReadyRevision")
        )
        serving = all(name in ready for name in desired)
        url = f"http://{resource.name}.{resource.namespace}.{self.domain}"
        waiting = "" if serving else "waiting for a ready replica of " + ", ".join(sorted(set(desired) - ready))
        errors = [r.last_error for replicas in states.values() for r in replicas if r.last_error and not r.ready]
        return {
            "observedGeneration": resource.generation,
            "url": url,
            "address": {"url": url},
            "conditions": [
                _condition("PredictorReady", serving, errors[0] if errors else waiting),
                _condition("IngressReady", True, ""),
                _condition("Ready", serving, rollout.rollback_reason or waiting),
            ],
            "components": {
                PREDICTOR: {
                    "url": url,
                    "latestCreatedRevision": rollout.latest_created,
                    "latestReadyRevision": latest_ready,
                    "latestRolledoutRevision": rollout.latest_rolled_out,
                    "previousRolledoutRevision": rollout.previous_rolled_out,
                    "traffic": [
                        {
                            "revisionName": name,
                            "percent": share,
                            "latestRevision": name == rollout.latest_created,
                            "tag": "latest" if name == rollout.latest_created else "prev",
                        }
                        for name, share in traffic.items()
                    ],
                }
            },
            "replicas": sum(len(replicas) for replicas in states.values()),
            "replicaStates": [
                {k: v for k, v in dataclasses.asdict(r).items() if k != "started_at"}
                for rs in states.values()
                for r in rs
            ],
            "rollout": dataclasses.asdict(rollout),
            "routing": {
                "model": plan.model_name,
                "traffic": traffic,
                "desired": desired,
                "shadow": list(shadow) if shadow else None,
                "timeout_s": plan.timeout_s,
                "container_concurrency": plan.container_concurrency,
            },
        }

    # -- routes -------------------------------------------------------------------------------------------------
    def _publish(self) -> None:
        """Hand the gateway the routes of every service."""
        services = []
        for resource in self.store.list(ISVC_KIND):
            routing = resource.status.get("routing")
            rollout = Rollout.from_status(resource.status)
            if routing is None or rollout is None:
                continue
            tags = {"latest": rollout.latest_created}
            prev = next((n for n in routing["traffic"] if n != rollout.latest_created), rollout.previous_rolled_out)
            if prev:
                tags["prev"] = prev
            revisions = {
                name: Revision(
                    name,
                    tuple(_replica(s) for s in self.backend.replicas(name)),
                    routing["timeout_s"],
                    routing["container_concurrency"],
                )
                for name in {*_routed(resource.status), *tags.values()}
            }
            shadow = routing["shadow"]
            services.append(
                Service(
                    namespace=resource.namespace,
                    name=resource.name,
                    model=routing["model"],
                    traffic=tuple(routing["traffic"].items()),
                    tags=tags,
                    revisions=revisions,
                    shadow=(shadow[0], shadow[1]) if shadow else None,
                )
            )
        graphs = tuple(self._graph(r) for r in self.store.list(GRAPH_KIND))
        self.gateway.update(RouteTable(tuple(services), self.domain, graphs))

    def _graph_statuses(self) -> None:
        """A graph is ready when every InferenceService it calls exists and is ready."""
        for graph in self.store.list(GRAPH_KIND):
            missing = []
            for service in sorted(_called_services(graph.manifest)):
                resource = self.store.get(ISVC_KIND, graph.namespace, service)
                conditions = resource.status.get("conditions", []) if resource else []
                if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    missing.append(service)
            url = f"http://{graph.name}.{graph.namespace}.{self.domain}"
            message = "waiting for InferenceService(s) " + ", ".join(missing) if missing else ""
            status = {
                "observedGeneration": graph.generation,
                "url": url,
                "conditions": [_condition("Ready", not missing, message)],
            }
            if status != graph.status:
                self.store.set_status(GRAPH_KIND, graph.namespace, graph.name, status)


def _shadow(rollout: Rollout, traffic: dict[str, int], plan: PredictorPlan) -> tuple[str, int] | None:
    """Mirror a share of the rolled-out revision's requests to the latest one while it takes no traffic itself."""
    percent = plan.policy.shadow_percent
    latest = rollout.latest_created
    if not percent or latest in traffic or latest == rollout.rolled_back:
        return None
    return latest, percent


def _cached(cache: dict[tuple[str, str, float, int], T], resource: Resource, make: Callable[[], T]) -> T:
    """`make()` once per version of `resource` (a re-created resource is a new version); older versions are dropped."""
    key = (resource.namespace, resource.name, resource.created, resource.generation)
    value = cache.get(key)
    if value is None:
        for old in [k for k in cache if k[:2] == key[:2]]:
            del cache[old]
        value = cache[key] = make()
    return value


def _called_services(manifest: dict[str, Any]) -> set[str]:
    return {
        step["serviceName"]
        for node in manifest["spec"]["nodes"].values()
        for step in node["steps"]
        if step.get("serviceName")
    }


def _routed(status: dict[str, Any]) -> list[str]:
    routing = status.get("routing") or {}
    shadow = routing["shadow"][:1] if routing.get("shadow") else []
    return [*routing.get("traffic", {}), *routing.get("desired", {}), *shadow]


def _condition(kind: str, ok: bool, message: str) -> dict[str, str]:
    return {"type": kind, "status": "True" if ok else "False", "message": message}


def _replica_spec(record: RevisionRecord) -> ReplicaSpec:
    spec = record.spec
    return ReplicaSpec(
        record.name, spec["model_name"], spec["model_uri"], spec["runtime"], spec["env"], tuple(spec["args"])
    )


def _replica(state: ReplicaState) -> Replica:
    return Replica(state.id, f"http://127.0.0.1:{state.http_port}", f"127.0.0.1:{state.grpc_port}", state.ready)
