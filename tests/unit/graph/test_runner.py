"""The graph runner with a fake `Call`: each router type, data passing, weights, failures, timeouts, nesting."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import orjson
import pytest

from wharf.errors import ConfigurationError, ServerBusy
from wharf.graph import (
    GraphRunner,
    Node,
    NodeTarget,
    RouterType,
    ServiceTarget,
    Step,
    StepAnswer,
    UrlTarget,
    parse_condition,
    service_call,
)

from .fakes import Answer, FakeCall, ScriptedRng

pytestmark = pytest.mark.anyio

REQUEST = {"instances": [[1.0, 2.0]], "tier": "gold"}
HEADERS = {"traceparent": "00-abc-def-01"}


def step(target: str, name: str | None = None, *, when: str | None = None, **options: Any) -> Step:
    """A step calling service `target`, or node `target[1:]` when it starts with `>`."""
    to = NodeTarget(target[1:]) if target.startswith(">") else ServiceTarget(target)
    condition = parse_condition(when) if when is not None else None
    return Step(name or target.lstrip(">"), to, condition=condition, **options)


def node(router: RouterType, *steps: Step) -> Node:
    return Node(router, steps)


def runner(nodes: dict[str, Node], call: FakeCall, rng: Any = None, timeout_s: float = 5.0) -> GraphRunner:
    return GraphRunner(nodes, call, rng or random.Random(0), step_timeout_s=timeout_s)


async def run(graph: GraphRunner, request: Any = REQUEST) -> tuple[int, Any]:
    status, body = await graph.run(orjson.dumps(request), HEADERS)
    return status, orjson.loads(body)


def fails(status: int, error: str = "down") -> Answer:
    return Answer(status, orjson.dumps({"error": error}))


def via(service: str, protocol: str = "v1") -> str:
    """How a failure names the service a step called, serving the model of its name."""
    return f"InferenceService {service!r} ({service_call(protocol, service).described})"


# Sequence


async def test_a_sequence_passes_the_request_or_the_previous_answer_on() -> None:
    call = FakeCall()
    graph = runner({"root": node("Sequence", step("a"), step("b", pass_response=True), step("c"))}, call)

    status, answer = await run(graph)

    assert status == 200 and call.called == ["a", "b", "c"]
    assert call.body_of("a") == REQUEST and call.body_of("c") == REQUEST
    assert call.body_of("b") == {"by": "a", "got": REQUEST}
    assert answer == {"by": "c", "got": REQUEST}
    assert all(headers == HEADERS for _, _, headers in call.calls)


async def test_a_sequence_step_runs_only_if_its_condition_matches_the_previous_answer() -> None:
    call = FakeCall({"classify": Answer(body=b'{"predictions": [{"label": "cat"}]}')})
    graph = runner(
        {
            "root": node(
                "Sequence",
                step("classify"),
                step("cats", when='predictions.#(label=="cat")', pass_response=True),
                step("dogs", when='got.predictions.#(label=="dog")', pass_response=True),
                step("never"),
            )
        },
        call,
    )

    status, answer = await run(graph)

    assert call.called == ["classify", "cats"]
    assert (status, answer) == (200, {"by": "cats", "got": {"predictions": [{"label": "cat"}]}})


async def test_a_sequence_tests_its_first_condition_against_its_request() -> None:
    call = FakeCall()
    graph = runner({"root": node("Sequence", step("a", when='tier=="silver"'))}, call)

    assert await run(graph) == (200, REQUEST)
    assert call.calls == []


# Switch


async def test_a_switch_takes_the_first_step_whose_condition_matches_the_request() -> None:
    call = FakeCall()
    switch = node(
        "Switch",
        step("silver", when='[@this].#(tier=="silver")'),
        step("gold", when='[@this].#(tier=="gold")'),
        step("any", when="tier"),
    )
    status, answer = await run(runner({"root": switch}, call))

    assert call.called == ["gold"] and (status, answer) == (200, {"by": "gold", "got": REQUEST})


async def test_a_switch_without_a_match_answers_its_request_unchanged() -> None:
    call = FakeCall()
    graph = runner({"root": node("Switch", step("a", when="nothing.here"))}, call)

    assert await run(graph) == (200, REQUEST)
    status, body = await graph.run(b"not json", HEADERS)
    assert (status, body) == (200, b"not json")
    assert call.calls == []


# Ensemble


async def test_an_ensemble_calls_its_steps_at_once_and_merges_their_answers_by_step_name() -> None:
    both_started = asyncio.Event()
    started: list[str] = []

    async def call(target: Any, body: bytes, headers: Any) -> StepAnswer:
        started.append(target.name)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 1)
        return StepAnswer(200, orjson.dumps({"predictions": [len(target.name)]}))

    graph = GraphRunner(
        {"root": node("Ensemble", step("xgb", "second"), step("sklearn", "first"))},
        call,
        random.Random(0),
        step_timeout_s=5,
    )
    status, body = await graph.run(orjson.dumps(REQUEST), HEADERS)

    assert status == 200
    assert body == b'{"second":{"predictions":[3]},"first":{"predictions":[7]}}'


# Splitter


async def test_a_splitter_picks_steps_in_proportion_to_their_weights() -> None:
    call = FakeCall()
    splitter = node("Splitter", step("a", weight=30), step("never", weight=0), step("b", weight=70))
    graph = runner({"root": splitter}, call, ScriptedRng(range(100)))

    for _ in range(200):
        assert (await run(graph))[0] == 200

    assert Counter(call.called) == {"a": 60, "b": 140}


async def test_a_splitter_with_a_seeded_rng_is_repeatable() -> None:
    splitter = node("Splitter", step("a", weight=50), step("b", weight=50))
    picks = []
    for _ in range(2):
        call = FakeCall()
        graph = runner({"root": splitter}, call, random.Random(7))
        for _ in range(20):
            await run(graph)
        picks.append(call.called)
    assert picks[0] == picks[1] and set(picks[0]) == {"a", "b"}


# Failures


async def test_a_soft_failure_is_skipped_and_the_sequence_goes_on_with_the_last_good_answer() -> None:
    call = FakeCall({"b": fails(500)})
    sequence = node("Sequence", step("a"), step("b", pass_response=True), step("c", pass_response=True))

    status, answer = await run(runner({"root": sequence}, call))

    assert call.called == ["a", "b", "c"]
    assert call.body_of("c") == {"by": "a", "got": REQUEST}
    assert (status, answer) == (200, {"by": "c", "got": {"by": "a", "got": REQUEST}})


async def test_a_soft_last_step_failure_leaves_the_last_good_answer() -> None:
    call = FakeCall({"b": fails(503)})
    status, answer = await run(runner({"root": node("Sequence", step("a"), step("b"))}, call))

    assert (status, answer) == (200, {"by": "a", "got": REQUEST})


async def test_a_node_none_of_whose_steps_succeeded_fails_with_its_first_failure() -> None:
    call = FakeCall({"a": fails(400, "bad shape"), "b": fails(500)})
    status, answer = await run(runner({"root": node("Sequence", step("a"), step("b"))}, call))

    assert (status, answer) == (
        400,
        {"error": f"step 'a' of node 'root' failed: {via('a')} answered status 400: bad shape"},
    )


async def test_a_hard_failure_stops_the_sequence_and_fails_the_graph() -> None:
    call = FakeCall({"b": fails(500, "boom")})
    sequence = node("Sequence", step("a"), step("b", hard=True), step("c"))

    status, answer = await run(runner({"root": sequence}, call))

    assert call.called == ["a", "b"]
    assert (status, answer) == (502, {"error": f"step 'b' of node 'root' failed: {via('b')} answered status 500: boom"})


async def test_an_ensemble_leaves_a_soft_failure_out() -> None:
    call = FakeCall({"b": Answer(body=b"not json"), "c": Answer(error=ConnectionResetError())})
    ensemble = node("Ensemble", step("a"), step("b"), step("c"), step("d"))

    status, answer = await run(runner({"root": ensemble}, call))

    assert status == 200 and list(answer) == ["a", "d"]


async def test_an_ensemble_none_of_whose_steps_answered_fails() -> None:
    call = FakeCall({"a": Answer(body=b"not json"), "b": fails(500)})
    status, answer = await run(runner({"root": node("Ensemble", step("a"), step("b"))}, call))

    assert (status, answer) == (502, {"error": "step 'a' of node 'root' failed: its answer is not JSON"})


async def test_an_ensemble_fails_on_a_hard_failure_and_cancels_the_rest() -> None:
    call = FakeCall({"slow": Answer(delay_s=10), "bad": fails(404, "no such model")})
    ensemble = node("Ensemble", step("slow"), step("bad", hard=True))

    status, answer = await asyncio.wait_for(run(runner({"root": ensemble}, call)), 1)

    assert (status, answer) == (
        404,
        {"error": f"step 'bad' of node 'root' failed: {via('bad')} answered status 404: no such model"},
    )


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (fails(422, "wrong datatype"), 422, f"{via('model')} answered status 422: wrong datatype"),
        (fails(500), 502, f"{via('model')} answered status 500: down"),
        (Answer(502, b"<html>"), 502, f"{via('model')} answered status 502"),
        (fails(503, "busy"), 503, f"{via('model')} answered status 503: busy"),
        (fails(504, "slow"), 504, f"{via('model')} answered status 504: slow"),
        (Answer(error=ConnectionRefusedError("refused")), 502, "ConnectionRefusedError: refused"),
        (Answer(error=ServerBusy("queue full")), 503, "queue full"),
    ],
)
async def test_a_failed_step_is_named_with_a_sensible_status(answer: Answer, status: int, reason: str) -> None:
    graph = runner({"root": node("Splitter", step("model", weight=100))}, FakeCall({"model": answer}))

    assert await run(graph) == (status, {"error": f"step 'model' of node 'root' failed: {reason}"})


async def test_a_step_without_an_answer_in_time_times_out() -> None:
    call = FakeCall({"slow": Answer(delay_s=5)})
    graph = runner({"root": node("Sequence", step("fast"), step("slow", hard=True))}, call, timeout_s=0.05)

    status, answer = await asyncio.wait_for(run(graph), 1)

    assert (status, answer) == (504, {"error": "step 'slow' of node 'root' failed: no answer within 0.05 s"})


# Nesting


async def test_steps_may_call_other_nodes() -> None:
    call = FakeCall()
    nodes = {
        "root": node("Sequence", step("pre"), step(">fanout", pass_response=True)),
        "fanout": node("Ensemble", step("m1"), step(">pick")),
        "pick": node("Switch", step("m2", when="got.tier")),
    }
    status, answer = await run(runner(nodes, call))

    pre = {"by": "pre", "got": REQUEST}
    assert status == 200 and sorted(call.called) == ["m1", "m2", "pre"]
    assert answer == {"m1": {"by": "m1", "got": pre}, "pick": {"by": "m2", "got": pre}}


async def test_a_failure_inside_a_nested_node_names_the_innermost_step() -> None:
    call = FakeCall({"m2": fails(500)})
    nodes = {
        "root": node("Sequence", step("pre"), step(">inner", hard=True), step("post")),
        "inner": node("Sequence", step("m2", hard=True)),
    }
    status, answer = await run(runner(nodes, call))

    assert call.called == ["pre", "m2"]
    assert (status, answer) == (
        502,
        {"error": f"step 'm2' of node 'inner' failed: {via('m2')} answered status 500: down"},
    )


async def test_a_soft_step_on_a_failing_node_is_skipped() -> None:
    call = FakeCall({"m2": fails(500)})
    nodes = {"root": node("Ensemble", step("m1"), step(">inner")), "inner": node("Sequence", step("m2", hard=True))}

    status, answer = await run(runner(nodes, call))

    assert status == 200 and list(answer) == ["m1"]


async def test_a_url_target_is_called_by_its_url() -> None:
    call = FakeCall()
    graph = runner({"root": node("Sequence", Step("ext", UrlTarget("http://ext.test/v1/models/m:predict")))}, call)

    assert (await run(graph))[0] == 200 and call.called == ["http://ext.test/v1/models/m:predict"]


async def test_a_failure_names_the_protocol_and_path_of_the_service_called() -> None:
    """A V1 body sent on to a V2 service: the service refuses it, and the error says which protocol it speaks."""
    refused = fails(400, "inputs: required")
    call = FakeCall({"v2-model": refused}, protocols={"v2-model": "v2"})
    sequence = node("Sequence", step("v1-model"), step("v2-model", "second", hard=True, pass_response=True))

    status, answer = await run(runner({"root": sequence}, call))

    assert (status, answer) == (
        400,
        {
            "error": "step 'second' of node 'root' failed: InferenceService 'v2-model'"
            " (protocol v2: POST /v2/models/v2-model/infer) answered status 400: inputs: required"
        },
    )


async def test_a_url_that_fails_is_named_by_its_url() -> None:
    call = FakeCall({"http://ext.test/x": fails(500)})
    graph = runner({"root": node("Sequence", Step("ext", UrlTarget("http://ext.test/x")))}, call)

    assert await run(graph) == (
        502,
        {"error": "step 'ext' of node 'root' failed: http://ext.test/x answered status 500: down"},
    )


def test_each_protocol_is_called_at_its_predict_path() -> None:
    assert service_call("v1", "iris") == ("/v1/models/iris:predict", "protocol v1: POST /v1/models/iris:predict")
    assert service_call("v2", "iris").path == service_call("grpc-v2", "iris").path == "/v2/models/iris/infer"
    assert service_call("grpc-v2", "iris").described == "protocol grpc-v2: POST /v2/models/iris/infer"


# Graphs that cannot run


@pytest.mark.parametrize(
    ("nodes", "reason"),
    [
        ({"main": node("Sequence", step("a"))}, "no node named 'root'"),
        ({"root": node("Sequence")}, "no steps"),
        ({"root": node("Sequence", step("a"), step("a"))}, "two steps of one name"),
        ({"root": node("Sequence", step(">ghost"))}, "calls node 'ghost': there is none"),
        ({"root": node("Sequence", step(">b")), "b": node("Sequence", step(">root"))}, "cycle: root -> b -> root"),
        ({"root": node("Splitter", step("a", weight=0))}, "positive sum"),
        ({"root": node("Splitter", step("a", weight=150), step("b", weight=-50))}, ">= 0"),
    ],
)
def test_a_graph_that_cannot_run_is_refused(nodes: dict[str, Node], reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        runner(nodes, FakeCall())
