"""An inference graph as plain data: named nodes, each a router over steps that call an InferenceService, a URL or
another node. The graph starts at the node named `root`. A `Bandit` node (Wharf's own router) has a bandit policy
(`wharf.bandit`) and its steps are the arms: each an InferenceService."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from wharf.bandit.policies import Policy
from wharf.errors import ConfigurationError
from wharf.graph.condition import Condition

ROOT = "root"

RouterType = Literal["Sequence", "Switch", "Ensemble", "Splitter", "Bandit"]


@dataclass(frozen=True)
class ServiceTarget:
    """An InferenceService of the graph's namespace (KServe's `serviceName`)."""

    name: str


@dataclass(frozen=True)
class UrlTarget:
    """Any HTTP endpoint (KServe's `serviceUrl`)."""

    url: str


@dataclass(frozen=True)
class NodeTarget:
    """Another node of the same graph (KServe's `nodeName`)."""

    name: str


CallTarget = ServiceTarget | UrlTarget
Target = CallTarget | NodeTarget


@dataclass(frozen=True)
class Step:
    """One step of a node.

    `name` keys the step's answer in an Ensemble's merged response and names it in errors (KServe uses the step's
    index where a step has no name). `pass_response` is KServe's `data: $response`, `hard` its
    `dependency: Hard`; `condition` is used by Switch and Sequence nodes, `weight` by Splitter nodes.
    """

    name: str
    target: Target
    pass_response: bool = False
    condition: Condition | None = None
    weight: int = 0
    hard: bool = False


@dataclass(frozen=True)
class Node:
    router: RouterType
    steps: tuple[Step, ...]
    policy: Policy | None = None  # a Bandit node's, which picks one of its steps (the arms) per request


def check_graph(nodes: Mapping[str, Node]) -> None:
    """Raise `ConfigurationError` unless the graph can run: it has a root, every node has uniquely named steps,
    every nodeName exists, no nodes call each other in a cycle and every Splitter has a positive total weight;
    a Bandit node (and only it) has a policy, and its steps call InferenceServices."""
    if ROOT not in nodes:
        raise ConfigurationError(f"the graph has no node named {ROOT!r}")
    for name, node in nodes.items():
        names = [step.name for step in node.steps]
        if not names:
            raise ConfigurationError(f"node {name!r} has no steps")
        if len(set(names)) != len(names):
            raise ConfigurationError(f"node {name!r} has two steps of one name")
        weights = [step.weight for step in node.steps]
        if node.router == "Splitter" and (min(weights) < 0 or sum(weights) <= 0):
            raise ConfigurationError(f"the weights of Splitter node {name!r} must be >= 0 with a positive sum")
        if (node.router == "Bandit") != (node.policy is not None):
            raise ConfigurationError(f"node {name!r}: a Bandit node needs a policy, and only a Bandit node has one")
        if node.router == "Bandit" and not all(isinstance(step.target, ServiceTarget) for step in node.steps):
            raise ConfigurationError(f"the steps of Bandit node {name!r} must each call an InferenceService")
        for step in node.steps:
            if isinstance(step.target, NodeTarget) and step.target.name not in nodes:
                missing = step.target.name
                raise ConfigurationError(f"step {step.name!r} of node {name!r} calls node {missing!r}: there is none")
    _check_acyclic(nodes)


def _check_acyclic(nodes: Mapping[str, Node]) -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        for step in nodes[name].steps:
            callee = step.target.name if isinstance(step.target, NodeTarget) else None
            if callee is None or callee in done:
                continue
            if callee in path:
                cycle = " -> ".join((*path[path.index(callee) :], callee))
                raise ConfigurationError(f"nodes call each other in a cycle: {cycle}")
            visit(callee, (*path, callee))
        done.add(name)

    for name in nodes:
        visit(name, (name,))
