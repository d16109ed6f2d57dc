"""A Bandit node in the graph runner: the `choose` it is handed picks the step, which gets the node's request; a
graph with Bandit nodes needs one, and check_graph keeps policies on Bandit nodes over services."""

from __future__ import annotations

import random

import orjson
import pytest

from wharf.bandit.policies import UCB1
from wharf.errors import ConfigurationError
from wharf.graph import GraphRunner, Headers, Node, NodeTarget, ServiceTarget, Step

from .fakes import FakeCall

ARMS = (Step("a", ServiceTarget("svc-a")), Step("b", ServiceTarget("svc-b")))


@pytest.mark.anyio
async def test_the_chosen_arm_gets_the_request_and_its_answer_is_the_nodes() -> None:
    chosen: list[tuple[str, dict[str, str]]] = []

    def choose(name: str, node: Node, headers: Headers) -> Step:
        chosen.append((name, dict(headers)))
        return node.steps[1]

    call = FakeCall()
    nodes = {"root": Node("Sequence", (Step("pick", NodeTarget("pick")),)), "pick": Node("Bandit", ARMS, UCB1())}
    runner = GraphRunner(nodes, call, random.Random(0), step_timeout_s=5, choose=choose)
    status, body = await runner.run(b'{"x": 1}', {"x-request-id": "r1"})
    assert (status, orjson.loads(body)) == (200, {"by": "svc-b", "got": {"x": 1}})
    assert chosen == [("pick", {"x-request-id": "r1"})] and [c[0] for c in call.calls] == ["svc-b"]


def test_a_bandit_needs_a_choose_a_policy_and_service_steps() -> None:
    call, rng = FakeCall(), random.Random(0)
    with pytest.raises(ConfigurationError, match="needs a `choose`"):
        GraphRunner({"root": Node("Bandit", ARMS, UCB1())}, call, rng, step_timeout_s=5)
    with pytest.raises(ConfigurationError, match="a Bandit node needs a policy"):
        GraphRunner({"root": Node("Bandit", ARMS)}, call, rng, step_timeout_s=5, choose=lambda *_: ARMS[0])
    with pytest.raises(ConfigurationError, match="only a Bandit node has one"):
        GraphRunner({"root": Node("Ensemble", ARMS, UCB1())}, call, rng, step_timeout_s=5)
    nested = {"root": Node("Bandit", (*ARMS, Step("n", NodeTarget("x")))), "x": Node("Sequence", ARMS)}
    nested["root"] = Node("Bandit", nested["root"].steps, UCB1())
    with pytest.raises(ConfigurationError, match="must each call an InferenceService"):
        GraphRunner(nested, call, rng, step_timeout_s=5, choose=lambda *_: ARMS[0])
