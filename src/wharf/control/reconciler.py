"""The reconciler: turns applied InferenceServices into revisions, replicas and routes.

For each component of each service (the predictor, a transformer in front of it, an explainer beside it) it keeps KServe's rollout
bookkeeping in the status (latest created / ready / rolled-out and previously rolled-out revisions), decides the
traffic split (canary, promotion, rollback), asks the backend for replicas of every revision that takes traffic
(or shadow traffic), and hands the gateway a fresh route table. The front component answers on the service's own
host; the predictor answers on `{service}-predictor` as well (as in KServe, with or without a transformer): behind a
transformer, that is where the transformer calls it through the gateway (so the predictor keeps its canary,
autoscaling and scale from zero), and so does an explainer, which answers on `{service}-explainer` and takes the
explain requests of the service's host (V1 `:explain`, V2 `/explain`) and gRPC's for model `{model}-explainer`.
The reconciler runs on events
(apply, delete, a replica's change) and on a periodic resync that records replicas for adoption and rolls back a
canary whose error rate or p99 latency crosses the service's thresholds. A full pass asked for while another waits
to start joins that one, so that a storm of replica changes costs one pass, not one each.

The machine runs at most `max_replicas` replicas in all: a revision gets what it asks for (its autoscaler's choice)
as far as the replicas of the others leave room, first come first served, and its status says so when it gets less.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from wharf.control.backends import ReplicaResources, ReplicaSpec, ReplicaState
from wharf.control.backends.base import Backend
from wharf.control.backends.node_selection import NodeSelection
from wharf.control.bandit_rollout import ArmSource, BanditRollouts, Canary
from wharf.control.gateway_process import GatewayProcess
from wharf.control.graph_plan import GRAPH_KIND, component_protocol, graph_route
from wharf.control.metrics import ControlMetrics
from wharf.control.spec import api_key_digests
from wharf.control.plan import (
    COMPONENTS,
    EXPLAINER,
    ISVC_KIND,
    PREDICTOR,
    TRANSFORMER,
    ComponentPlan,
    ServicePlan,
    component_name,
    identity_env,
    predictor_env,
    service_plan,
)
from wharf.control.scaling import RevisionScaling
from wharf.control.store import Resource, RevisionRecord, Store
from wharf.errors import ConfigurationError
from wharf.gateway import Gateway
from wharf.gateway.model_routing import ModelPlacement
from wharf.gateway.routes import Graph, Replica, Revision, RouteTable, Service
from wharf.logger import LogTarget

log = logging.getLogger(__name__)
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
    def from_status(status: dict[str, Any], component: str) -> Rollout | None:
        saved = _by_component(status.get("rollout")).get(component)
        return Rollout(**saved) if saved else None

    def advance(self, latest: str, canary_percent: int | None) -> Rollout:
        """Where the rollout stands once `latest` is the newest revision and the spec asks for `canary_percent`."""
        rolled_back = self.rolled_back if self.rolled_back == latest else None
        stable, before = self.latest_rolled_out, self.previous_rolled_out
        if canary_percent is None and latest != stable and rolled_back is None:  # promoted
            stable, before = latest, stable
        return Rollout(latest, stable, before, rolled_back, self.rollback_reason if rolled_back else None)

    def promote(self) -> Rollout:
        """The latest revision rolled out (a bandit found it the better): all traffic, the one before it previous."""
        return Rollout(self.latest_created, self.latest_created, self.latest_rolled_out)

    def readmitted(self) -> Rollout:
        """The rollout with its rolled-back revision in play again: the spec's canary percent applies to it."""
        return dataclasses.replace(self, rolled_back=None, rollback_reason=None)

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
    def can_roll_back(self) -> bool:
        """Whether there is something to roll back: a canary, or a promoted revision with one rolled out before."""
        promoted = self.latest_created == self.latest_rolled_out and self.previous_rolled_out is not None
        return self.canary is not None or promoted

    @property
    def canary(self) -> str | None:
        """The revision under trial: created, not rolled out, not rolled back."""
        latest = self.latest_created
        return latest if latest != self.latest_rolled_out and latest != self.rolled_back else None


@dataclass(frozen=True, slots=True)
class ComponentState:
    """Where one component stands after a pass: its rollout and the split it serves, wants and mirrors."""

    rollout: Rollout
    traffic: dict[str, int]
    desired: dict[str, int]
    shadow: tuple[str, int] | None
    serving: bool  # whether every revision it wants traffic on can take it (ready, or scaled to zero)


@dataclass(frozen=True, slots=True)
class Ingress:
    """The gateway's addresses, where transformers reach their predictors."""

    http_url: str
    grpc_target: str


class Reconciler:
    def __init__(
        self,
        store: Store,
        backend: Backend,
        gateway: Gateway | GatewayProcess,
        ingress: Ingress,
        domain: str,
        grace_s: float,
        max_replicas: int = 64,
        bandit_arms: ArmSource | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.gateway = gateway
        self.ingress = ingress
        self.domain = domain
        self.max_replicas = max_replicas
        self.metrics = ControlMetrics()
        self.metrics.count_payload_events(gateway.payload_counts)
        self.scaling = RevisionScaling(grace_s, self.metrics)
        self.scaling.restore(_chosen_scales(store))  # a restart takes each revision over at the scale it had
        self.bandits = BanditRollouts(bandit_arms)  # the canaries of bandit rollouts (bandit_arms: their rewards)
        self._lock = asyncio.Lock()
        self._next_pass: asyncio.Task[None] | None = None  # a full pass waiting for the lock, for others to join
        self._capped: dict[str, tuple[int, int]] = {}  # revision -> (replicas wanted, granted) under the cap
        self._routed: set[str] = set()  # the revisions routed at the last prune
        # Parsed once per version of a resource: the resync reads every resource each second.
        self._plans: dict[tuple[str, str, float, int], ServicePlan] = {}
        self._graphs: dict[tuple[str, str, float, int], Graph] = {}
        self._saved_replicas: dict[str, tuple[str, dict[str, Any]]] | None = None  # what the store last got
        #: what the model monitor last said of each model it has rows of (its `GET /status`), shown in the status
        #: of the service of that name as `monitoring`
        self.monitoring: dict[str, Any] = {}
        #: set by TrainedModels (`trained_models.py`): each multi-model revision's placement of its models, handed to
        #: the gateway with its route, and what each multi-model service's replicas hold (by namespace/name), shown
        #: in its status as `multiModel`
        self.model_placements: dict[str, ModelPlacement] = {}
        self.multi_model: dict[str, Any] = {}
        #: requests waiting outside the gateway for a service (namespace, name): the inference calls the lag of the
        #: KafkaSources feeding it holds (set by the daemon's KafkaSources), sampled as if they waited in the gateway
        self.waiting: dict[tuple[str, str], int] = {}

    def _plan(self, resource: Resource) -> ServicePlan:
        return _cached(self._plans, resource, lambda: service_plan(resource.manifest, self.domain))

    def _graph(self, resource: Resource) -> Graph:
        return _cached(
            self._graphs,
            resource,
            lambda: graph_route(resource.namespace, resource.name, resource.manifest, resource.uid),
        )

    async def reconcile(self, namespace: str | None = None, name: str | None = None) -> None:
        """Bring one service (or, without a name, every service) to its spec, then prune and publish routes."""
        if name is not None:
            async with self._lock:
                await self._pass(namespace, name)
            return
        if self._next_pass is None or self._next_pass.done():  # else one waits to start, and sees what this call would
            self._next_pass = asyncio.get_running_loop().create_task(self._full_pass())
        await asyncio.shield(self._next_pass)

    async def _full_pass(self) -> None:
        async with self._lock:
            self._next_pass = None  # this pass may read the state before a later change: that needs a pass of its own
            await self._pass(None, None)

    async def _pass(self, namespace: str | None, name: str | None) -> None:
        for resource in self.store.list(ISVC_KIND):
            if name is None or (resource.namespace, resource.name) == (namespace, name):
                await self._reconcile(resource)
        await self._prune()
        self._graph_statuses()
        self._publish()

    async def rollback(self, namespace: str, name: str, reason: str, component: str | None = None) -> None:
        """Roll back `component` (nothing happens if it has nothing to roll back); without one, every component
        with a canary, else the predictor, else the transformer, whichever can go back to an earlier revision
        (ConfigurationError if none can)."""
        async with self._lock:
            resource = self.store.get(ISVC_KIND, namespace, name)
            if resource is None:
                return
            rollouts = {
                each: rollout
                for each in _by_component(resource.status.get("rollout"))
                if (rollout := Rollout.from_status(resource.status, each)) is not None
            }
            if component is not None:
                chosen = [component] if component in rollouts and rollouts[component].can_roll_back else []
            else:
                chosen = [c for c, r in rollouts.items() if r.canary] or [
                    c for c in COMPONENTS if c in rollouts and rollouts[c].can_roll_back
                ][:1]
                if not chosen:
                    raise ConfigurationError(
                        f"InferenceService {namespace}/{name}: no canary or earlier revision to roll back to"
                    )
            if not chosen:
                return
            saved = {c: dataclasses.asdict(r.roll_back(reason) if c in chosen else r) for c, r in rollouts.items()}
            self.store.set_status(ISVC_KIND, namespace, name, {**resource.status, "rollout": saved})
        await self.reconcile(namespace, name)

    async def promote(self, namespace: str, name: str, component: str, reason: str) -> None:
        """Roll out `component`'s canary (nothing happens if it has none now)."""
        async with self._lock:
            resource = self.store.get(ISVC_KIND, namespace, name)
            rollout = Rollout.from_status(resource.status, component) if resource is not None else None
            if resource is None or rollout is None or rollout.canary is None:
                return
            log.info("promoting a canary", extra={"service": name, "component": component, "reason": reason})
            saved = {**resource.status["rollout"], component: dataclasses.asdict(rollout.promote())}
            self.store.set_status(ISVC_KIND, namespace, name, {**resource.status, "rollout": saved})
        await self.reconcile(namespace, name)

    async def readmit(self, namespace: str, name: str, components: Collection[str] = COMPONENTS) -> None:
        """Put the rolled-back latest revision of each of `components` back in play (promoting it, or letting it
        take its canary percent, at the next pass); a component without one is left as it is."""
        async with self._lock:
            resource = self.store.get(ISVC_KIND, namespace, name)
            if resource is None:
                return
            saved = _by_component(resource.status.get("rollout"))
            readmitted = {
                each: dataclasses.asdict(Rollout(**rollout).readmitted())
                for each, rollout in saved.items()
                if each in components and rollout.get("rolled_back")
            }
            if readmitted:
                self.store.set_status(ISVC_KIND, namespace, name, {**resource.status, "rollout": saved | readmitted})

    async def resync(self) -> None:
        """The periodic pass: load is sampled for the autoscalers, canaries are judged, statuses and routes follow
        replica health, and replicas are recorded for adoption."""
        self._sample_load()
        for resource in self.store.list(ISVC_KIND):
            for component, reason in self._judge_canaries(resource):
                log.warning(
                    "rolling back a canary", extra={"service": resource.name, "component": component, "reason": reason}
                )
                await self.rollback(resource.namespace, resource.name, reason, component)
            if self._plan(resource).policy.bandit:
                await self._judge_bandit(resource.namespace, resource.name)
        await self.reconcile()
        records = {s.id: (s.revision, dataclasses.asdict(s)) for s in self.backend.replicas()}
        if records != self._saved_replicas:
            self.store.save_replicas(records)
            self._saved_replicas = records

    async def demand(self, revision: str) -> None:
        """Requests wait in the gateway for `revision`, which has no ready replica: scale it up now."""
        for resource in self.store.list(ISVC_KIND):
            for component, plan in self._plan(resource).components.items():
                if revision in _routed(resource.status, component):
                    self.scaling.demanded(revision, plan.scaling)
                    await self.reconcile(resource.namespace, resource.name)

    def _sample_load(self) -> None:
        stats = self.gateway.stats()
        for resource in self.store.list(ISVC_KIND):
            service = self._plan(resource)
            waiting = self.waiting.get((resource.namespace, resource.name), 0)  # sent to the front component
            for component, plan in service.components.items():
                extra = waiting if component == service.front else 0
                for revision in set(_routed(resource.status, component)):
                    self.scaling.observe_gateway(revision, plan.scaling, stats.get(revision), extra)

    def adoptable_specs(self) -> dict[str, ReplicaSpec]:
        """The replica spec of every stored revision of every component, by revision name: what a restarted
        daemon's replicas must have been started with to be adopted."""
        return {
            record.name: self._replica_spec(record)
            for resource in self.store.list(ISVC_KIND)
            for component in COMPONENTS
            for record in self.store.revisions(resource.namespace, resource.name, component)
        }

    # -- one service --------------------------------------------------------------------------------------------
    async def _reconcile(self, resource: Resource) -> None:
        plan = self._plan(resource)
        states = {
            component: await self._reconcile_component(resource, component, component_plan, plan)
            for component, component_plan in plan.components.items()
        }
        front = plan.front
        previous = (resource.status.get("routing") or {}).get("front")
        if front == TRANSFORMER and previous == PREDICTOR and not states[TRANSFORMER].serving:
            front = PREDICTOR  # a transformer added to a running service takes its host once it can answer
        status = self._status(resource, plan, states, front)
        if status != resource.status:
            self.store.set_status(ISVC_KIND, resource.namespace, resource.name, status)

    async def _reconcile_component(
        self, resource: Resource, component: str, plan: ComponentPlan, service: ServicePlan
    ) -> ComponentState:
        revision, _ = self.store.revision_for(
            resource.namespace, resource.name, component, plan.fingerprint, plan.replica
        )
        saved = Rollout.from_status(resource.status, component)
        rollout = saved.advance(revision.name, plan.canary_percent) if saved else Rollout(revision.name, revision.name)
        desired = rollout.traffic(self.bandits.percent(service.policy, rollout.canary, plan.canary_percent))
        shadow = _shadow(rollout, desired, service.policy.shadow_percent)
        records = {r.name: r for r in self.store.revisions(resource.namespace, resource.name, component)}
        for name in {*desired, *(shadow[:1] if shadow else ())}:
            replicas = self.backend.replicas(name)
            wanted = self.scaling.replicas(name, plan.scaling, sum(replica.ready for replica in replicas))
            await self.backend.scale(self._replica_spec(records[name]), self._granted(name, wanted, len(replicas)))
        # Traffic moves only to revisions that can take it: until then the split published before stays.
        published = _routing(resource.status, component).get("traffic")
        takes_traffic = all(self._ready(name) or self.scaling.at_zero(name) for name in desired)
        traffic = desired if published is None or takes_traffic else published
        return ComponentState(rollout, traffic, desired, shadow, takes_traffic)

    def _granted(self, revision: str, wanted: int, has: int) -> int:
        """How many of the `wanted` replicas `revision` (which `has` some) may run: as many as the other revisions'
        replicas leave under the machine's cap. A shortfall is kept for the revision's status."""
        room = max(self.max_replicas - (len(self.backend.replicas()) - has), 0)
        if wanted <= room:
            self._capped.pop(revision, None)
            return wanted
        self._capped[revision] = (wanted, room)
        return room

    def _cap_message(self, revision: str) -> str:
        wanted, granted = self._capped[revision]
        return (
            f"replica cap reached: {revision} runs {granted} of the {wanted} replicas it wants"
            f" (this machine runs at most {self.max_replicas}: WHARF_MAX_REPLICAS)"
        )

    def _ready(self, revision: str) -> bool:
        return any(replica.ready for replica in self.backend.replicas(revision))

    def _replica_spec(self, record: RevisionRecord) -> ReplicaSpec:
        """What a replica of `record` runs, told what it serves; a transformer's also says where the gateway is, to
        call its predictor."""
        spec = record.spec
        env = {**spec["env"], **identity_env(record.namespace, record.service, record.component, record.name)}
        if "predictor" in spec:
            caller = f"{record.namespace}/{record.service}/{record.component}"
            env.update(predictor_env(spec["predictor"], self.ingress.http_url, self.ingress.grpc_target, caller))
        resources = ReplicaResources.from_kubernetes(spec.get("resources"))  # revisions made before have none
        nodes = NodeSelection.from_kubernetes(spec.get("node_selector"), spec.get("tolerations"))
        return ReplicaSpec(
            record.name, spec["model_name"], spec["model_uri"], spec["runtime"], env, tuple(spec["args"]), resources,
            nodes,
        )  # fmt: skip

    def _judge_canaries(self, resource: Resource) -> list[tuple[str, str]]:
        """(component, why) for each component whose canary must be rolled back."""
        policy = self._plan(resource).policy
        if not policy.auto_rollback:
            return []
        verdicts = []
        for component in self._plan(resource).components:
            rollout = Rollout.from_status(resource.status, component)
            stats = self.gateway.stats().get(rollout.canary) if rollout and rollout.canary else None
            if rollout is None or stats is None or stats.requests < MIN_REQUESTS_FOR_ROLLBACK:
                continue
            limit = policy.rollback_error_rate
            if limit is not None and stats.error_rate > limit:
                reason = f"canary {rollout.canary} failed {stats.error_rate:.0%} of its requests (limit {limit:.0%})"
                verdicts.append((component, reason))
            elif (
                policy.rollback_p99_ms is not None
                and stats.p99_ms is not None
                and stats.p99_ms > policy.rollback_p99_ms
            ):
                reason = (
                    f"canary {rollout.canary} answered at p99 {stats.p99_ms:.0f} ms"
                    f" (limit {policy.rollback_p99_ms:.0f} ms)"
                )
                verdicts.append((component, reason))
        return verdicts

    async def _judge_bandit(self, namespace: str, name: str) -> None:
        """Promote or roll back each canary of a bandit rollout whose verdict says so (the others take the share
        their verdict gives at the next pass)."""
        resource = self.store.get(ISVC_KIND, namespace, name)  # as the canary judge left it
        if resource is None:
            return
        plan = self._plan(resource)
        canaries = [
            Canary(component, rollout.canary, rollout.latest_rolled_out, component_plan.canary_percent)
            for component, component_plan in plan.components.items()
            if (rollout := Rollout.from_status(resource.status, component)) is not None
            and rollout.canary is not None
            and component_plan.canary_percent is not None
        ]
        for canary, verdict in self.bandits.judge(namespace, name, plan.policy, canaries):
            if verdict.action == "promote":
                await self.promote(namespace, name, canary.component, verdict.reason)
            elif verdict.action == "roll_back":
                why = f"canary {canary.latest} lost its bandit rollout: {verdict.reason}"  # CanaryFailed
                log.warning("rolling back a canary", extra={"service": name, "reason": why})
                await self.rollback(namespace, name, why, canary.component)

    async def _prune(self) -> None:
        """Stop replicas of revisions that no service routes to any more."""
        wanted: set[str] = set()
        for resource in self.store.list(ISVC_KIND):
            wanted |= set(_routed(resource.status))
        # (one no longer routed goes even at zero replicas: the backend may keep a standby for it)
        for revision in ({state.revision for state in self.backend.replicas()} | self._routed) - wanted:
            await self.backend.remove(revision)
        self._routed = wanted
        self.scaling.forget(wanted)
        self.bandits.forget(wanted)
        self._capped = {revision: shortfall for revision, shortfall in self._capped.items() if revision in wanted}

    def _url(self, resource: Resource, component: str, front: str) -> str:
        """The front component answers on the service's host; one behind it on `{service}-{component}`."""
        name = resource.name if component == front else component_name(resource.name, component)
        return f"http://{name}.{resource.namespace}.{self.domain}"

    def _status(
        self, resource: Resource, plan: ServicePlan, states: dict[str, ComponentState], front: str
    ) -> dict[str, Any]:
        components, conditions, routing = {}, [], {}
        replicas: list[ReplicaState] = []
        messages = []
        rolled_back = [state.rollout for state in states.values() if state.rollout.rolled_back]
        for component, state in states.items():
            rollout, desired = state.rollout, state.desired
            names = {*state.traffic, *desired, *(state.shadow[:1] if state.shadow else ())}
            by_revision = {name: self.backend.replicas(name) for name in names}
            replicas += [r for rs in by_revision.values() for r in rs]
            ready = {n for n, rs in by_revision.items() if any(r.ready for r in rs) or self.scaling.at_zero(n)}
            previous = resource.status.get("components", {}).get(component, {})
            latest_ready = (
                rollout.latest_created if rollout.latest_created in ready else previous.get("latestReadyRevision")
            )
            serving = all(name in ready for name in desired)
            waiting = "" if serving else "waiting for a ready replica of " + ", ".join(sorted(set(desired) - ready))
            errors = [e for rs in by_revision.values() for r in rs if not r.ready and (e := _replica_error(r))]
            progress = [r.progress for rs in by_revision.values() for r in rs if not r.ready and r.progress]
            capped = "; ".join(self._cap_message(n) for n in sorted(names) if n in self._capped)
            reason = errors[0] if errors else capped or waiting  # Ready's too; progress there: an event a second
            message = (errors or progress or [reason])[0]
            conditions.append(_condition(f"{component.capitalize()}Ready", serving, message))
            if capped or not serving:
                messages.append(capped if serving else reason)
            components[component] = {
                "url": self._url(resource, component, front),
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
                    for name, share in state.traffic.items()
                ],
            }
            routing[component] = {
                "traffic": state.traffic,
                "desired": desired,
                "shadow": list(state.shadow) if state.shadow else None,
                "timeout_s": plan.components[component].timeout_s,
                "container_concurrency": plan.components[component].container_concurrency,
                "logger": plan.components[component].logger,
                "scale": {n: chosen for n in sorted(names) if (chosen := self.scaling.chosen(n)) is not None},
            }
        url = self._url(resource, front, front)
        serving = all(c["status"] == "True" for c in conditions)
        trials = {
            c: trial for c, state in states.items() if (trial := self.bandits.trial(plan.policy, state.rollout.canary))
        }
        return {
            "observedGeneration": resource.generation,
            "url": url,
            "address": {"url": url},
            "conditions": [
                *conditions,
                _condition("IngressReady", True, ""),
                _condition("Ready", serving, "; ".join(m for m in messages if m)),
                *([_rolled_back_condition(rolled_back)] if rolled_back else []),
            ],
            "components": components,
            "replicas": len(replicas),
            "replicaStates": [{k: v for k, v in dataclasses.asdict(r).items() if k not in _UNSHOWN} for r in replicas],
            "rollout": {component: dataclasses.asdict(state.rollout) for component, state in states.items()},
            "routing": {"model": plan.model_name, "front": front, "components": routing},
            **({"monitoring": monitored} if (monitored := self.monitoring.get(resource.name)) else {}),
            **({"multiModel": held} if (held := self.multi_model.get(f"{resource.namespace}/{resource.name}")) else {}),
            **({"bandit": trials} if trials else {}),  # each bandit rollout's trial (bandit_rollout.py)
        }

    # -- routes -------------------------------------------------------------------------------------------------
    def _publish(self) -> None:
        """Hand the gateway the routes of every service: one gateway service per component."""
        services = []
        for resource in self.store.list(ISVC_KIND):
            routing = resource.status.get("routing") or {}
            for component, route in (routing.get("components") or {}).items():
                rollout = Rollout.from_status(resource.status, component)
                front = component == routing["front"]
                if rollout is None or not (front or component in (PREDICTOR, EXPLAINER)):  # a transformer not serving
                    continue
                services.append(self._service(resource, component, route, rollout, routing["model"], front))
        graphs = tuple(self._graph(r) for r in self.store.list(GRAPH_KIND))
        self.gateway.update(RouteTable(tuple(services), self.domain, graphs))

    def _service(
        self, resource: Resource, component: str, route: dict[str, Any], rollout: Rollout, model: str, front: bool
    ) -> Service:
        tags = {"latest": rollout.latest_created}
        prev = next((n for n in route["traffic"] if n != rollout.latest_created), rollout.previous_rolled_out)
        if prev:
            tags["prev"] = prev
        name = resource.name if front else component_name(resource.name, component)
        logger = route.get("logger")  # absent from a status written by the previous release
        url = self._url(resource, component, component if front else "")
        revisions = {
            revision: Revision(
                revision,
                tuple(_replica(s) for s in self.backend.replicas(revision)),
                route["timeout_s"],
                route["container_concurrency"],
                None if logger is None else _log_target(logger, resource, component, revision, url),
                self.backend.failing(revision),
                placement=self.model_placements.get(revision),
            )
            for revision in {*_routed(resource.status, component), *tags.values()}
        }
        shadow = route["shadow"]
        explains = component == EXPLAINER
        has_explainer = EXPLAINER in (resource.status.get("routing") or {}).get("components", {})
        return Service(
            namespace=resource.namespace,
            name=name,
            model=component_name(model, EXPLAINER) if explains else model,
            traffic=tuple(route["traffic"].items()),
            tags=tags,
            revisions=revisions,
            shadow=(shadow[0], shadow[1]) if shadow else None,
            front=front or explains,  # gRPC requests naming `{model}-explainer` go to the explainer
            aliases=(component_name(resource.name, PREDICTOR),) if front and component == PREDICTOR else (),
            api_keys=api_key_digests(resource.manifest["metadata"].get("annotations") or {}),
            protocol=component_protocol(resource.manifest, component),
            explainer=f"{resource.namespace}/{component_name(resource.name, EXPLAINER)}"
            if front and has_explainer
            else None,
            bandit=front and self._plan(resource).policy.bandit,  # rewards credit the revision that answered
        )

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


def _shadow(rollout: Rollout, traffic: dict[str, int], percent: int | None) -> tuple[str, int] | None:
    """Mirror a share of the rolled-out revision's requests to the latest one while it takes no traffic itself."""
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


def _by_component(saved: dict[str, Any] | None) -> dict[str, Any]:
    """A status entry kept per component; one saved before services had components is the predictor's."""
    if not saved:
        return {}
    return {PREDICTOR: saved} if "latest_created" in saved or "traffic" in saved else saved


def _chosen_scales(store: Store) -> dict[str, int]:
    """The replicas the autoscaler last chose for each revision, as the services' statuses keep them (absent from
    a status written by the previous release)."""
    return {
        revision: scale
        for resource in store.list(ISVC_KIND)
        for component in COMPONENTS
        for revision, scale in (_routing(resource.status, component).get("scale") or {}).items()
    }


def _routing(status: dict[str, Any], component: str) -> dict[str, Any]:
    """The routing a component's last pass recorded (empty before its first)."""
    routing = status.get("routing") or {}
    return _by_component(routing.get("components", routing)).get(component) or {}


def _routed(status: dict[str, Any], component: str | None = None) -> list[str]:
    """The revisions a component (or, without one, any component) routes or mirrors requests to, or scales for."""
    components = COMPONENTS if component is None else (component,)
    routed = []
    for each in components:
        routing = _routing(status, each)
        shadow = routing["shadow"][:1] if routing.get("shadow") else []
        routed += [*routing.get("traffic", {}), *routing.get("desired", {}), *shadow]
    return routed


def _replica_error(state: ReplicaState) -> str:
    """Why a replica is not ready: what it waits for to start (Pending), or its last error, and the delay before it
    starts again when it is backing off."""
    if state.pending:
        return state.pending
    if state.backoff_s:
        return f"CrashLoopBackOff: back-off {state.backoff_s:g} s restarting replica {state.id}: {state.last_error}"
    return state.last_error or ""


def _condition(kind: str, ok: bool, message: str) -> dict[str, str]:
    return {"type": kind, "status": "True" if ok else "False", "message": message}


def _rolled_back_condition(rollouts: list[Rollout]) -> dict[str, str]:
    """`RolledBack` True: the latest revision of each of `rollouts` is out of traffic. Its reason says how:
    `CanaryFailed` when the canary judge did it (its verdicts begin "canary REVISION ..."), else
    `RollbackRequested` (`wharf rollout rollback`); its message says why."""
    automatic = all((r.rollback_reason or "").startswith(f"canary {r.rolled_back} ") for r in rollouts)
    reason = "CanaryFailed" if automatic else "RollbackRequested"
    message = "; ".join(f"{r.rolled_back}: {r.rollback_reason}" for r in rollouts)
    return {"type": "RolledBack", "status": "True", "reason": reason, "message": message}


# Replica bookkeeping kept out of a service's status: when its process started, the digest of its spec.
_UNSHOWN = frozenset({"started_at", "spec_digest"})


def _log_target(logger: dict[str, Any], resource: Resource, component: str, revision: str, url: str) -> LogTarget:
    """Where `revision` of `resource`'s `component` (answering at `url`) logs its payloads."""
    return LogTarget(
        url=logger["url"],
        mode=logger["mode"],
        service=resource.name,
        namespace=resource.namespace,
        component=component,
        endpoint=revision,
        source=url,
        metadata_headers=tuple(logger["metadata_headers"]),
    )


def _replica(state: ReplicaState) -> Replica:
    host = f"[{state.host}]" if ":" in state.host else state.host
    return Replica(state.id, f"http://{host}:{state.http_port}", f"{host}:{state.grpc_port}", state.ready)
