"""What a person looks at to trust a bandit: per arm its pulls, rewards, mean reward, share of the traffic so far,
whether it is ready, and the chance the policy gives it for the next request.

`GET /apis/wharf.dev/v1/namespaces/NS/inferencegraphs/NAME/bandit` answers, for each Bandit node of the graph,
`{"key", "policy", "parameters", "pulls", "arms": [{"name", "service", "ready", "pulls", "rewards", "meanReward",
"share", "probability"}]}` under `nodes` (empty for a graph without one). An arm is ready when its
InferenceService's Ready condition is True; one that is not gets no traffic (probability 0) and the others share
it, as in the gateway. Probabilities are exact where the policy has a closed form, else estimated from
`wharf.bandit.policies.DEFAULT_SAMPLES` draws (Thompson sampling: a few milliseconds).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter

from wharf.bandit.arms import ArmStats
from wharf.bandit.policies import Policy
from wharf.control.bandit_state import BanditState
from wharf.control.console_api import PREFIX
from wharf.control.graph_plan import GRAPH_KIND, graph_nodes
from wharf.control.plan import ISVC_KIND
from wharf.control.store import Store
from wharf.errors import NotFound
from wharf.gateway.bandits import graph_bandit
from wharf.graph import ServiceTarget


def arm_figures(
    policy: Policy, arms: Sequence[tuple[str, bool]], counts: Mapping[str, ArmStats], rng: random.Random
) -> dict[str, Any]:
    """The figures of one bandit: `arms` are (name, ready) in order, `counts` what the state holds of them."""
    stats = [counts.get(name) or ArmStats(name) for name, _ in arms]
    ready = [s for s, (_, ok) in zip(stats, arms, strict=True) if ok] or stats  # none ready: the gateway tries all
    chances = policy.probabilities(ready, rng)
    total = sum(s.pulls for s in stats)
    return {
        "policy": policy.name,
        "parameters": policy.params(),
        "pulls": total,
        "arms": [
            {
                "name": s.name,
                "ready": ok,
                "pulls": s.pulls,
                "rewards": s.rewards,
                "meanReward": s.mean,
                "share": s.pulls / total if total else None,
                "probability": chances.get(s.name, 0.0),
            }
            for s, (_, ok) in zip(stats, arms, strict=True)
        ],
    }


def graph_figures(store: Store, state: BanditState, namespace: str, name: str) -> dict[str, Any]:
    """The figures of every Bandit node of a graph (NotFound when there is no such graph)."""
    resource = store.get(GRAPH_KIND, namespace, name)
    if resource is None:
        raise NotFound(f"InferenceGraph {namespace}/{name} not found")
    nodes: dict[str, Any] = {}
    rng = random.Random()
    for node_name, node in graph_nodes(resource.manifest).items():
        if node.policy is None:
            continue
        key = graph_bandit(namespace, name, resource.uid, node_name)
        services = [step.target.name if isinstance(step.target, ServiceTarget) else "" for step in node.steps]
        arms = [(step.name, _ready(store, namespace, s)) for step, s in zip(node.steps, services, strict=True)]
        figures = arm_figures(node.policy, arms, state.arms(key), rng)
        for arm, service in zip(figures["arms"], services, strict=True):
            arm["service"] = service
        nodes[node_name] = {"key": key, **figures}
    return {"graph": f"{namespace}/{name}", "nodes": nodes}


def bandit_router(store: Store, state: BanditState) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["bandits"])

    @router.get(
        "/namespaces/{namespace}/inferencegraphs/{name}/bandit",
        summary="A graph's bandits: per arm its pulls, rewards, mean reward, share of traffic and chance now",
    )
    async def graph(namespace: str, name: str) -> dict[str, Any]:
        return graph_figures(store, state, namespace, name)

    return router


def _ready(store: Store, namespace: str, service: str) -> bool:
    resource = store.get(ISVC_KIND, namespace, service)
    conditions = resource.status.get("conditions", []) if resource else []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
