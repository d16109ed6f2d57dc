"""The plain graph (wharf.graph's nodes and steps) of a parsed KServe `InferenceGraph` spec."""

from __future__ import annotations

from typing import Any

from wharf.bandit.policies import policy_from_spec
from wharf.control.spec import InferenceGraph, InferenceGraphSpec, InferenceStep, SpecError, parse_manifest
from wharf.control.spec.common import format_path
from wharf.errors import ConfigurationError
from wharf.gateway.routes import Graph
from wharf.graph.condition import Condition, parse_condition
from wharf.graph.nodes import Node, NodeTarget, ServiceTarget, Step, Target, UrlTarget, check_graph

GRAPH_KIND = "InferenceGraph"


def graph_nodes(manifest: dict[str, Any]) -> dict[str, Node]:
    """The nodes of an applied InferenceGraph, refusing steps the gateway does not run yet (serviceUrl)."""
    graph = parse_manifest(manifest)
    assert isinstance(graph, InferenceGraph)
    nodes = nodes_from_spec(graph.spec)
    by_url = [
        (f"spec.nodes.{name}.steps[{i}].serviceUrl", "not served yet: name the InferenceService with serviceName")
        for name, node in nodes.items()
        for i, step in enumerate(node.steps)
        if isinstance(step.target, UrlTarget)
    ]
    if by_url:
        raise SpecError(by_url)
    return nodes


def nodes_from_spec(spec: InferenceGraphSpec) -> dict[str, Node]:
    """The spec's nodes, their conditions compiled; `SpecError` names each step Wharf cannot run."""
    problems: list[tuple[str, str]] = []
    nodes: dict[str, Node] = {}
    for name, router in spec.nodes.items():
        steps = []
        for i, step in enumerate(router.steps):
            where = format_path(("spec", "nodes", name, "steps", i))
            if step.map_predictions_to_instances:
                problems.append((f"{where}.mapPredictionsToInstances", "not supported by Wharf's graph router"))
            try:
                condition = parse_condition(step.condition) if step.condition is not None else None
            except ConfigurationError as e:
                problems.append((f"{where}.condition", e.message))
                condition = None
            bandit = router.router_type == "Bandit"
            steps.append(_step(step, (step.arm if bandit else step.name) or str(i), condition))
        policy = policy_from_spec(router.policy, router.parameters) if router.policy is not None else None
        nodes[name] = Node(router.router_type, tuple(steps), policy)
    if problems:
        raise SpecError(problems)
    check_graph(nodes)
    return nodes


def graph_route(namespace: str, name: str, manifest: dict[str, Any], uid: str = "") -> Graph:
    """What the gateway needs to run an applied InferenceGraph (of resource `uid`): its nodes, each step timed out
    after `spec.timeout`."""
    return Graph(namespace, name, graph_nodes(manifest), float(manifest["spec"]["timeout"]), uid)


def component_protocol(manifest: dict[str, Any], component: str) -> str:
    """The protocolVersion of a component of an applied InferenceService (`v1` or `v2`): the protocol an
    InferenceGraph's step calls it with when it is in front, as KServe's graph controller chooses the path (the
    transformer's protocol when there is one, else the predictor's)."""
    return str(manifest["spec"][component].get("model", {}).get("protocolVersion", "v1"))


def _step(step: InferenceStep, name: str, condition: Condition | None) -> Step:
    return Step(
        name=name,
        target=_target(step),
        pass_response=step.data == "$response",
        condition=condition,
        weight=step.weight or 0,
        hard=step.dependency == "Hard",
    )


def _target(step: InferenceStep) -> Target:
    if step.service_name is not None:
        return ServiceTarget(step.service_name)
    if step.service_url is not None:
        return UrlTarget(str(step.service_url))
    assert step.node_name is not None  # the spec requires exactly one target
    return NodeTarget(step.node_name)
