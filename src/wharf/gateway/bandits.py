"""The gateway's side of multi-armed bandits: it picks arms locally, counts pulls and rewards, and reports them.

The control plane keeps each bandit's statistics (`wharf.control.bandit_state`) and hands every gateway the
totals of all gateways (`channel.Arms`); a gateway reports the totals of its own counts since it began
(`BanditReport`, with each statistics push). Reports are cumulative, so the control plane applies the difference
to what it last applied of that gateway: a report lost, repeated or applied by a restarted daemon counts each
pull and reward once, and several gateways add up. Meanwhile a gateway routes by its view: the control plane's
totals plus what it counted that those do not include yet (its own totals minus those the control plane says it
applied), so its own pulls and rewards count at once and the others' within a push or two.

Bandits are keyed by what they route: `graph_bandit(namespace, graph, uid, node)` for a graph's Bandit node (the
arms are its steps; `uid` the graph's resource's, so that one deleted and applied again starts afresh),
`service_bandit(namespace, service)` for a service whose rollout is a bandit (the arms are its revisions); a gateway
forgets a bandit once its route table has it no more. Ground truth posted with a reward travels with the next
report (at most once: one lost with a connection is not sent again).

Per routed request: the view of the node's ready arms (a list of a handful), the policy's choice over them (O(arms)
arithmetic, one draw per arm for Thompson sampling), one pull counted (an integer, and one immutable `ArmStats` for
the view) and one id remembered (`feedback.RecentRequests`). Timed over 3 arms (`GraphBandits.choose`, timeit, on a
2-core machine under a load average of about 6): 14 µs for UCB1, 18 µs for EpsilonGreedy, 24 µs for Thompson
sampling, of which the policy's own choice is 7, 4 and 12 µs. Requests that no bandit routes pay nothing here.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from wharf.bandit.arms import ArmStats
from wharf.bandit.policies import Policy
from wharf.gateway.feedback import Feedback, Pull, RecentRequests
from wharf.gateway.payloads import REQUEST_ID
from wharf.gateway.routes import Graph, RouteTable, Service
from wharf.graph import Headers, Node, ServiceTarget, Step

ArmTable = dict[str, dict[str, ArmStats]]  # bandit key -> arm -> statistics
ARM = "x-wharf-arm"  # the header (gRPC: metadata) of an answer that names the arms it came from
TRUTHS_KEPT = 10_000  # ground truths waiting for the next report at most (a daemon away loses the oldest)
_ADDED = tuple(f.name for f in dataclasses.fields(ArmStats) if f.name != "name")


def graph_bandit(namespace: str, graph: str, uid: str, node: str) -> str:
    """The key of a Bandit node of a graph (of resource `uid`: one applied again after a delete starts afresh)."""
    return f"{graph_bandits(namespace, graph, uid)}{node}"


def graph_bandits(namespace: str, graph: str, uid: str) -> str:
    """What the keys of a graph's Bandit nodes start with."""
    return f"InferenceGraph/{namespace}/{graph}/{uid}/"


def service_bandit(namespace: str, service: str) -> str:
    """The key of a service whose rollout is a bandit over its revisions."""
    return f"InferenceService/{namespace}/{service}"


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """The true output of a request a bandit routed, for the model monitor (`POST /data/labels`)."""

    namespace: str
    model: str
    request_id: str
    labels: dict[str, list[object]]


@dataclass(frozen=True, slots=True)
class BanditReport:
    """A gateway's counts since it began (`gateway`: its id, new each start) per bandit and arm, and the ground
    truths posted since its previous report."""

    gateway: str
    totals: ArmTable
    truths: tuple[GroundTruth, ...] = ()


def combined(a: ArmStats, b: ArmStats, sign: int = 1) -> ArmStats:
    """`a` plus (`sign` 1) or minus (-1) `b`'s counts, under `a`'s name."""
    return dataclasses.replace(a, **{f: getattr(a, f) + sign * getattr(b, f) for f in _ADDED})


class BanditLedger:
    """This gateway's bandit statistics, recent routed requests and pending ground truths."""

    def __init__(self, recent: RecentRequests, gateway: str | None = None) -> None:
        self.gateway = gateway or uuid.uuid4().hex
        self.recent = recent
        self._pulls: dict[str, dict[str, int]] = {}  # counted here since this gateway began
        self._rewards: ArmTable = {}  # likewise (their arms' pulls are in `_pulls`)
        self._view: ArmTable = {}  # what arms are chosen by (see `arms_state`)
        self._truths: deque[GroundTruth] = deque(maxlen=TRUTHS_KEPT)  # the oldest go while no report is read
        self._changed = False  # counted since the last report
        self._synced = False  # the control plane's totals came since this gateway (re)connected to it

    def view(self, bandit: str, arms: Iterable[str]) -> list[ArmStats]:
        """The statistics of `arms` of `bandit`, as this gateway knows them now."""
        known = self._view.get(bandit, {})
        return [known.get(arm) or ArmStats(arm) for arm in arms]

    def pulled(self, bandit: str, arm: str) -> None:
        self._changed = True
        pulls = self._pulls.get(bandit) or self._pulls.setdefault(bandit, {})
        pulls[arm] = pulls.get(arm, 0) + 1
        view = self._view.get(bandit) or self._view.setdefault(bandit, {})
        view[arm] = (view.get(arm) or ArmStats(arm)).pulled()

    def rewarded(self, bandit: str, arm: str, reward: float) -> None:
        self._changed = True
        for table in (self._rewards, self._view):
            arms = table.setdefault(bandit, {})
            arms[arm] = (arms.get(arm) or ArmStats(arm)).rewarded(reward)

    def totals(self) -> ArmTable:
        """What this gateway counted since it began, per bandit and arm."""
        totals: ArmTable = {}
        for bandit in self._pulls.keys() | self._rewards.keys():
            pulls, rewards = self._pulls.get(bandit, {}), self._rewards.get(bandit, {})
            totals[bandit] = {
                arm: dataclasses.replace(rewards.get(arm) or ArmStats(arm), pulls=pulls.get(arm, 0))
                for arm in pulls.keys() | rewards.keys()
            }
        return totals

    def route(self, request_id: str, bandit: str, arm: str, namespace: str, model: str) -> None:
        """A request went to `arm` of `bandit`: count the pull and remember the request for its feedback."""
        self.pulled(bandit, arm)
        self.recent.remember(request_id, Pull(bandit, arm, namespace, model))

    def credit(self, feedback: Feedback, bandits: Callable[[str], bool], check: Callable[[str, float], None]) -> str:
        """Reward the arms the request of `feedback` went to, among those of `bandits`; `check(bandit, reward)`
        raises where a bandit's policy cannot learn from the reward. FeedbackRefused (unknown, expired, already
        rewarded id). Returns the arms rewarded, comma-separated."""
        pulls = self.recent.claim(feedback.request_id, bandits, lambda pull: check(pull.bandit, feedback.reward))
        for pull in pulls:
            self.rewarded(pull.bandit, pull.arm, feedback.reward)
        if feedback.truth is not None:
            for model in dict.fromkeys((p.namespace, p.model) for p in pulls):
                self._truths.append(GroundTruth(*model, feedback.request_id, feedback.truth))
        return ",".join(pull.arm for pull in pulls)

    def report(self) -> BanditReport | None:
        """What to send the control plane with this push: None while nothing changed since the last one and the
        control plane's totals came since the connection began (the first report of a connection asks for them)."""
        if not self._changed and not self._truths and self._synced:
            return None
        truths, self._changed = tuple(self._truths), False
        self._truths.clear()
        return BanditReport(self.gateway, self.totals(), truths)

    def retain(self, table: RouteTable) -> None:
        """Forget the bandits that `table` routes by no longer (a graph or a service deleted, a rollout ended)."""
        live = {
            graph_bandit(graph.namespace, graph.name, graph.uid, name)
            for graph in table.graphs
            for name, node in graph.nodes.items()
            if node.policy is not None
        } | {service_bandit(service.namespace, service.name) for service in table.services if service.bandit}
        for counts in (self._pulls, self._rewards, self._view):
            for gone in counts.keys() - live:
                del counts[gone]

    def reconnected(self) -> None:
        """A control plane connected: the next report carries every count (one sent before may have been lost)."""
        self._synced = False

    def arms_state(self, base: ArmTable, applied: ArmTable) -> None:
        """The control plane's totals (`base`) and, of this gateway's counts, those they include (`applied`): from
        now on arms are chosen by the totals plus what this gateway counted that they do not include yet."""
        self._synced = True
        view: ArmTable = {bandit: dict(arms) for bandit, arms in base.items()}
        for bandit, arms in self.totals().items():
            seen = applied.get(bandit, {})
            into = view.setdefault(bandit, {})
            for arm, total in arms.items():
                missing = combined(total, seen[arm], -1) if arm in seen else total
                into[arm] = combined(into[arm], missing) if arm in into else missing
        self._view = view


class _Node(NamedTuple):
    """A Bandit node as the choice needs it under one table."""

    key: str
    policy: Policy
    arms: tuple[str, ...]  # the ready ones (all when none is)
    steps: dict[str, Step]  # by arm
    models: dict[str, str]  # arm -> the model (InferenceService) that answers there


class GraphBandits:
    """The arm choice of one graph's Bandit nodes under one route table: the ready arms of each node are found once
    (an arm is ready when its service can take requests: see `service_ready`), and when none is, all arms are."""

    def __init__(
        self, ledger: BanditLedger, graph: Graph, services: Callable[[str], Service | None], rng: random.Random
    ) -> None:
        self._ledger = ledger
        self._namespace = graph.namespace
        self._rng = rng
        self._nodes: dict[str, _Node] = {}
        self.services: list[Service] = []  # those of the arms, as the table has them
        for name, node in graph.nodes.items():
            if node.policy is None:
                continue
            models, ready = {}, []
            for step in node.steps:
                assert isinstance(step.target, ServiceTarget)  # a Bandit's steps call services (check_graph)
                service = services(f"{graph.namespace}/{step.target.name}")
                models[step.name] = service.name if service is not None else step.target.name
                if service is not None:
                    self.services.append(service)
                if service is not None and service_ready(service):
                    ready.append(step.name)
            arms = tuple(ready) or tuple(step.name for step in node.steps)
            key = graph_bandit(graph.namespace, graph.name, graph.uid, name)
            self._nodes[name] = _Node(key, node.policy, arms, {step.name: step for step in node.steps}, models)

    def choose(self, node_name: str, node: Node, headers: Headers) -> Step:
        """The arm (step) of `node` this request goes to, counted and remembered by the request's id."""
        key, policy, arms, steps, models = self._nodes[node_name]
        arm = policy.choose(self._ledger.view(key, arms), self._rng).arm
        self._ledger.route(headers[REQUEST_ID], key, arm, self._namespace, models[arm])
        return steps[arm]

    def policies(self) -> Mapping[str, Policy]:
        """The policy of each Bandit node's key."""
        return {node.key: node.policy for node in self._nodes.values()}


def service_ready(service: Service) -> bool:
    """Whether `service` can take requests now: none of the revisions of its traffic keeps failing to start, and
    each has a ready replica or none at all (scaled to zero: the activator wakes it)."""
    for name, percent in service.traffic:
        revision = service.revisions[name]
        if percent and (revision.failing or (revision.replicas and not any(r.ready for r in revision.replicas))):
            return False
    return True


def has_bandit(nodes: Mapping[str, Node] | Sequence[Node]) -> bool:
    """Whether a graph of these nodes has a Bandit node."""
    values = nodes.values() if isinstance(nodes, Mapping) else nodes
    return any(node.policy is not None for node in values)
