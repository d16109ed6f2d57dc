"""Runs an inference graph, one request at a time, from its `root` node.

Every node gets a request (bytes) and answers bytes; the graph's answer is the root's, with status 200. A step
calls its target with the data described below and the request's headers, unchanged.

- Sequence: the steps run in order. A step gets the node's request, or with `pass_response` the last answer a
  step of this node gave (the node's request before there is one). A step with a condition runs only if the
  condition matches that last answer (the node's request for the first step); if it does not, the sequence stops
  there and answers the last answer. The node answers its last step's answer.
- Switch: the first step whose condition matches the node's request gets it, and its answer is the node's. When
  no condition matches, the node answers its request unchanged (as KServe documents it; KServe's router itself
  answers 404 then).
- Ensemble: every step gets the node's request, all at once. The answers, each JSON, are merged into one object
  keyed by step name, in step order.
- Splitter: one step, picked at random in proportion to the weights, gets the node's request.
- Bandit (Wharf's): one step, the arm that the runner's `Choose` picks by the node's policy (the gateway's: the
  arms' statistics and readiness are its), gets the node's request.

Conditions read JSON; a body that is not JSON matches no condition.

A step calls an InferenceService at the predict path of the service's protocol (`wharf.graph.protocols`: V1
`:predict` or V2 `/infer`, as KServe resolves a serviceName step), with its data unchanged whatever the protocol.

A step fails when its target answers a status outside 2xx, raises, or gives no answer within the step timeout
(an Ensemble's step also fails when its answer is not JSON); a failing node is a failing step of the node that
called it. A Hard step's failure fails its node. A Soft step's failure is skipped: a Sequence goes on with the
last good data and an Ensemble leaves the step's key out. A node none of whose steps that ran succeeded fails all
the same, with its first failure: a Switch's or Splitter's one step always decides. A failed graph answers
`{"error": "step 's' of node 'n' failed: ..."}` naming the innermost failing step (and, when a service answered
it, the service, its protocol and the path called), with the status that step got (a 4xx as it came, 503 and 504
as they came, 504 for a timeout, 502 for any other failure).

While tracing is on (`wharf.telemetry.tracing`), each step is a span `step {step}` (attributes `wharf.graph.node`,
`wharf.graph.step`; failed where the step failed), current while its target runs, so that the service it calls
continues it and a step calling a node holds that node's steps. Off, a check of `tracing.enabled` per step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, Protocol

import orjson

from wharf.errors import ConfigurationError, WharfError
from wharf.graph.condition import MISSING
from wharf.graph.nodes import ROOT, CallTarget, Node, NodeTarget, ServiceTarget, Step, check_graph
from wharf.telemetry import tracing

Headers = Mapping[str, str]


class StepAnswer(NamedTuple):
    """What a step's target answered, and how errors name what was called (`ServiceCall.described`)."""

    status: int
    body: bytes
    called: str = ""


#: Calls a service or URL with a body and headers.
Call = Callable[[CallTarget, bytes, Headers], Awaitable[StepAnswer]]
#: Picks the step (arm) of a Bandit node (named by the first argument) for a request with these headers.
Choose = Callable[[str, Node, Headers], Step]


class Rng(Protocol):
    def randrange(self, stop: int, /) -> int: ...


class StepFailed(WharfError):
    """A step of a node failed; `http_status` is what the graph answers for it."""

    grpc_code = "UNAVAILABLE"

    def __init__(self, node: str, step: str, reason: str, http_status: int) -> None:
        super().__init__(f"step {step!r} of node {node!r} failed: {reason}")
        self.http_status = http_status


class GraphRunner:
    """Runs requests through a graph; `check_graph`'s `ConfigurationError` if the nodes cannot run."""

    def __init__(
        self, nodes: Mapping[str, Node], call: Call, rng: Rng, *, step_timeout_s: float, choose: Choose | None = None
    ) -> None:
        check_graph(nodes)
        if choose is None and any(node.router == "Bandit" for node in nodes.values()):
            raise ConfigurationError("a graph with Bandit nodes needs a `choose` that picks their arms")
        self._nodes = dict(nodes)
        self._call = call
        self._rng = rng
        self._choose = choose
        self.step_timeout_s = step_timeout_s

    async def run(self, body: bytes, headers: Headers) -> tuple[int, bytes]:
        """The graph's (status, body) for a request; a failure is answered as `{"error": ...}`."""
        try:
            return 200, await self._node(ROOT, body, headers)
        except WharfError as e:
            return e.http_status, orjson.dumps({"error": e.message})

    async def _node(self, name: str, request: bytes, headers: Headers) -> bytes:
        node = self._nodes[name]
        match node.router:
            case "Sequence":
                return await self._sequence(name, node, request, headers)
            case "Switch":
                document = _decode(request)
                chosen = next((s for s in node.steps if s.condition and s.condition.matches(document)), None)
                return request if chosen is None else await self._step(name, chosen, request, headers)
            case "Ensemble":
                return await self._ensemble(name, node, request, headers)
            case "Splitter":
                return await self._step(name, self._pick(node), request, headers)
            case "Bandit":
                assert self._choose is not None  # checked when the runner was made
                return await self._step(name, self._choose(name, node, headers), request, headers)

    async def _sequence(self, name: str, node: Node, request: bytes, headers: Headers) -> bytes:
        last, answered = request, False
        failures: list[StepFailed] = []
        for step in node.steps:
            if step.condition is not None and not step.condition.matches(_decode(last)):
                break
            outcome = await self._try(name, step, last if step.pass_response else request, headers)
            if isinstance(outcome, StepFailed):
                failures.append(outcome)
            else:
                last, answered = outcome, True
        if failures and not answered:
            raise failures[0]
        return last

    async def _ensemble(self, name: str, node: Node, request: bytes, headers: Headers) -> bytes:
        tasks = [asyncio.create_task(self._try(name, s, request, headers, decode=True)) for s in node.steps]
        try:
            outcomes = await asyncio.gather(*tasks)
        except StepFailed:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        merged = {s.name: o for s, o in zip(node.steps, outcomes, strict=True) if not isinstance(o, StepFailed)}
        if not merged:
            raise outcomes[0]
        return orjson.dumps(merged)

    def _pick(self, node: Node) -> Step:
        point = self._rng.randrange(sum(s.weight for s in node.steps))
        for step in node.steps:
            if point < step.weight:
                return step
            point -= step.weight
        raise AssertionError("randrange answered beyond the total weight")

    async def _try(self, node: str, step: Step, data: bytes, headers: Headers, decode: bool = False) -> Any:
        """The step's answer (decoded JSON with `decode`), or a Soft step's failure; a Hard step's is raised."""
        try:
            answer = await self._step(node, step, data, headers)
            return _decode_answer(node, step, answer) if decode else answer
        except StepFailed as failure:
            if step.hard:
                raise
            return failure

    async def _step(self, node: str, step: Step, data: bytes, headers: Headers) -> bytes:
        if tracing.enabled:
            with tracing.span(f"step {step.name}", {"wharf.graph.node": node, "wharf.graph.step": step.name}):
                return await self._run_step(node, step, data, headers)
        return await self._run_step(node, step, data, headers)

    async def _run_step(self, node: str, step: Step, data: bytes, headers: Headers) -> bytes:
        if isinstance(step.target, NodeTarget):
            return await self._node(step.target.name, data, headers)
        try:
            async with asyncio.timeout(self.step_timeout_s):
                status, answer, called = await self._call(step.target, data, headers)
        except TimeoutError:
            raise StepFailed(node, step.name, f"no answer within {self.step_timeout_s:g} s", 504) from None
        except WharfError as e:
            raise StepFailed(node, step.name, e.message, e.http_status) from e
        except Exception as e:  # the transport's own errors: connection refused, reset, ...
            raise StepFailed(node, step.name, f"{type(e).__name__}: {e}", 502) from e
        if not 200 <= status < 300:
            reason = f"{_named(step.target, called)} answered {_upstream_reason(status, answer)}"
            raise StepFailed(node, step.name, reason, _graph_status(status))
        return answer


def _decode(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return MISSING


def _decode_answer(node: str, step: Step, answer: bytes) -> Any:
    document = _decode(answer)
    if document is MISSING:
        raise StepFailed(node, step.name, "its answer is not JSON", 502)
    return document


def _named(target: CallTarget, called: str) -> str:
    named = f"InferenceService {target.name!r}" if isinstance(target, ServiceTarget) else target.url
    return f"{named} ({called})" if called else named


def _upstream_reason(status: int, answer: bytes) -> str:
    document = _decode(answer)
    detail = document.get("error") if isinstance(document, dict) else None
    return f"status {status}: {detail}" if isinstance(detail, str) else f"status {status}"


def _graph_status(status: int) -> int:
    return status if 400 <= status < 500 or status in (503, 504) else 502
