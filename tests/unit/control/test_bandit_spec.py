"""The Bandit router in KServe's InferenceGraph spec (Wharf's extension): a policy and its parameters checked with
their field paths, arms that are InferenceServices with distinct names, and the plain graph made of it."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.bandit.policies import EpsilonGreedy, ThompsonSampling
from wharf.control.graph_plan import graph_nodes
from wharf.control.spec import SpecError, parse_manifest
from wharf.graph import ServiceTarget


def manifest(**root: Any) -> dict[str, Any]:
    node = {"routerType": "Bandit", "policy": "ThompsonSampling", "steps": [{"serviceName": "a"}, {"serviceName": "b"}]}
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": "g"},
        "spec": {"nodes": {"root": {**node, **root}}},
    }


def problems(doc: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as raised:
        parse_manifest(doc)
    return str(raised.value)


def test_a_bandit_graph_becomes_nodes_with_a_policy_and_arms_named_by_step_or_service() -> None:
    steps = [{"name": "first", "serviceName": "a"}, {"serviceName": "b"}]
    doc = manifest(policy="EpsilonGreedy", parameters={"epsilon": 0.2, "decay": 0.99, "warmupPulls": 3}, steps=steps)
    root = graph_nodes(doc)["root"]
    assert root.router == "Bandit" and root.policy == EpsilonGreedy(warmup_pulls=3, epsilon=0.2, decay=0.99)
    assert [(s.name, s.target) for s in root.steps] == [("first", ServiceTarget("a")), ("b", ServiceTarget("b"))]
    assert graph_nodes(manifest(parameters={"reward": "gaussian"}))["root"].policy == ThompsonSampling(
        reward="gaussian"
    )


@pytest.mark.parametrize(
    ("root", "found"),
    [
        ({"policy": None}, "spec.nodes.root.policy: required: a Bandit picks its arm"),
        ({"policy": "Greedy"}, "spec.nodes.root.policy: unknown bandit policy 'Greedy'"),
        ({"parameters": {"epsilon": 0.1}}, "spec.nodes.root.parameters.epsilon: not a parameter of ThompsonSampling"),
        ({"parameters": {"reward": "poisson"}}, "spec.nodes.root.parameters.reward: must be bernoulli"),
        (
            {"policy": "EpsilonGreedy", "parameters": {"epsilon": 1.5}},
            "spec.nodes.root.parameters.epsilon: must be a probability",
        ),
        ({"parameters": {"warmupPulls": -1}}, "spec.nodes.root.parameters.warmupPulls: must be a whole number"),
        ({"steps": [{"serviceName": "a"}]}, "spec.nodes.root.steps: a Bandit needs at least two arms"),
        (
            {"steps": [{"serviceName": "a"}, {"serviceName": "a"}]},
            "spec.nodes.root.steps[1]: another arm of this node is named 'a'",
        ),
        (
            {"steps": [{"serviceName": "a"}, {"name": "a", "serviceName": "b"}]},
            "spec.nodes.root.steps[1]: another arm of this node is named 'a'",
        ),
        (
            {"steps": [{"serviceName": "a"}, {"serviceUrl": "http://x.test/"}]},
            "spec.nodes.root.steps[1]: a Bandit's arms are InferenceServices",
        ),
        (
            {"steps": [{"serviceName": "a", "weight": 50}, {"serviceName": "b"}]},
            "spec.nodes.root.steps[0].weight: only Splitter nodes use weights (this node is a Bandit)",
        ),
        (
            {"steps": [{"serviceName": "a", "condition": "x"}, {"serviceName": "b"}]},
            "spec.nodes.root.steps[0].condition: only Switch and Sequence nodes use conditions",
        ),
        (
            {"steps": [{"serviceName": "a", "data": "$response"}, {"serviceName": "b"}]},
            "spec.nodes.root.steps[0].data: only Sequence nodes pass $response on",
        ),
        ({"routerType": "Sequence"}, "spec.nodes.root.policy: only Bandit nodes have a policy"),
        (
            {"routerType": "Ensemble", "policy": None, "parameters": {}},
            "spec.nodes.root.parameters: only Bandit nodes have policy parameters",
        ),
    ],
)
def test_bandit_problems_name_the_field(root: dict[str, Any], found: str) -> None:
    doc = manifest(**root)
    doc["spec"]["nodes"]["root"] = {k: v for k, v in doc["spec"]["nodes"]["root"].items() if v is not None}
    assert found in problems(doc)
