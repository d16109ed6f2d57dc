"""KServe's `serving.kserve.io/v1alpha1` InferenceGraph: nodes of routers whose steps call InferenceServices,
URLs or other nodes.

The rules are KServe's, made checks where KServe only documents them: the entry node is named `root`; a step has
exactly one target (serviceName, serviceUrl or nodeName); step names are unique within a node; a Splitter's steps
all have weights, summing to 100; a Switch's steps all have conditions (GJSON expressions; KServe's router matches
a step without one to nothing). A field a router type does not use is an error rather than ignored: weights
belong to Splitter nodes, conditions to Switch and Sequence nodes, and `data: $response` (pass the previous
step's response on instead of the node's request) to Sequence nodes. Nodes must not call each other in a cycle.

Wharf's extension, `routerType: Bandit`: a multi-armed bandit whose steps are the arms, each an InferenceService
(`serviceName`); per request, the node's `policy` picks one arm, which gets the node's request, and the feedback
that clients post to the graph (`POST {graph URL}/feedback` with a `reward`) moves traffic to the arm that earns
the most. `policy` is `EpsilonGreedy`, `UCB1` or `ThompsonSampling` (`wharf.bandit.policies`), `parameters` its
parameters (`warmupPulls` for every policy; `epsilon`, `decay`, `minEpsilon` for EpsilonGreedy; `reward`:
`bernoulli` or `gaussian` for ThompsonSampling). An arm is named by its step's `name`, else its `serviceName`; a
Bandit node has at least two arms of distinct names, and uses no weights, conditions or `$response`. `policy` and
`parameters` on another router type are errors, as is a Bandit node without a `policy`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from wharf.control.spec.common import (
    DEFAULT_TIMEOUT_S,
    WHARF_PREFIX,
    HttpUrl,
    Problem,
    ResourceName,
    Resources,
    Scaling,
    SpecModel,
    TopLevelResource,
)
from wharf.bandit.policies import PolicyError, policy_from_spec
from wharf.control.spec.ignored import PodSettings

API_VERSION = "serving.kserve.io/v1alpha1"
KIND = "InferenceGraph"
ROOT = "root"

RouterType = Literal["Sequence", "Switch", "Ensemble", "Splitter", "Bandit"]


class InferenceStep(SpecModel):
    """One step of a node: its target, and how the router uses it."""

    name: str | None = None
    service_name: ResourceName | None = None
    service_url: HttpUrl | None = None
    node_name: str | None = None
    data: Literal["$request", "$response"] = "$request"
    condition: str | None = None
    weight: int | None = Field(None, ge=0, le=100)
    dependency: Literal["Soft", "Hard"] = "Soft"
    map_predictions_to_instances: bool = False

    @property
    def target(self) -> str | None:
        return self.service_name or self.service_url or self.node_name

    @property
    def arm(self) -> str | None:
        """The arm a Bandit node's step is: its name, else its service's."""
        return self.name or self.service_name

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        targets = [t for t in (self.service_name, self.service_url, self.node_name) if t is not None]
        if len(targets) != 1:
            yield (), f"needs exactly one of serviceName, serviceUrl or nodeName ({len(targets)} given)"


class InferenceRouter(SpecModel):
    """A node of the graph."""

    router_type: RouterType
    steps: list[InferenceStep] = Field(min_length=1)
    policy: str | None = None  # a Bandit's: EpsilonGreedy, UCB1 or ThompsonSampling
    parameters: dict[str, Any] | None = None  # the policy's, camelCase

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        yield from self._bandit_problems()
        names: set[str] = set()
        for i, step in enumerate(self.steps):
            if step.name is not None:
                if step.name in names:
                    yield ("steps", i, "name"), f"another step of this node is named {step.name!r}"
                names.add(step.name)
            for loc, reason in self._step_problems(step):
                yield ("steps", i, *loc), reason
        if self.router_type == "Splitter" and all(s.weight is not None for s in self.steps):
            total = sum(s.weight or 0 for s in self.steps)
            if total != 100:
                yield ("steps",), f"the weights of a Splitter's steps must sum to 100 (they sum to {total})"

    def _step_problems(self, step: InferenceStep) -> Iterator[Problem]:
        kind = self.router_type
        if kind == "Splitter" and step.weight is None:
            yield ("weight",), "required: a Splitter picks a step by weight"
        if kind != "Splitter" and step.weight is not None:
            yield ("weight",), f"only Splitter nodes use weights (this node is a {kind})"
        if kind == "Switch" and not step.condition:
            yield ("condition",), "required: a Switch takes the first step whose condition matches"
        if kind in ("Ensemble", "Splitter", "Bandit") and step.condition is not None:
            yield ("condition",), f"only Switch and Sequence nodes use conditions (this node is a {kind})"
        if kind != "Sequence" and step.data != "$request":
            yield ("data",), f"only Sequence nodes pass $response on (this node is a {kind})"
        if kind == "Bandit" and step.service_name is None:
            yield (), "a Bandit's arms are InferenceServices: the step needs serviceName"

    def _bandit_problems(self) -> Iterator[Problem]:
        if self.router_type != "Bandit":
            for field, what in (("policy", "a policy"), ("parameters", "policy parameters")):
                if getattr(self, field) is not None:
                    yield (field,), f"only Bandit nodes have {what} (this node is a {self.router_type})"
            return
        if self.policy is None:
            yield ("policy",), "required: a Bandit picks its arm by EpsilonGreedy, UCB1 or ThompsonSampling"
        else:
            try:
                policy_from_spec(self.policy, self.parameters)
            except PolicyError as e:
                yield (("policy",) if e.field == "policy" else ("parameters", e.field)), e.reason
        if len(self.steps) < 2:
            yield ("steps",), "a Bandit needs at least two arms (steps) to choose from"
        named: dict[str, bool] = {}  # arm -> whether its step has a name (two named alike are reported above)
        for i, step in enumerate(self.steps):
            arm = step.arm
            if arm is None:
                continue
            if arm in named and not (named[arm] and step.name is not None):
                yield ("steps", i), f"another arm of this node is named {arm!r}: give the steps distinct names"
            named.setdefault(arm, step.name is not None)


class InferenceGraphSpec(Scaling, PodSettings):
    """The graph: its nodes, and the router's own resources, timeout (seconds) and replicas."""

    nodes: dict[str, InferenceRouter] = Field(min_length=1)
    resources: Resources = Field(default_factory=Resources)
    timeout: int = Field(DEFAULT_TIMEOUT_S, ge=1)

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        if ROOT not in self.nodes:
            yield ("nodes",), f"needs a node named {ROOT!r}: the graph's entry"
        for name, node in self.nodes.items():
            for i, step in enumerate(node.steps):
                if step.node_name is not None and step.node_name not in self.nodes:
                    yield ("nodes", name, "steps", i, "nodeName"), f"no node is named {step.node_name!r}"
        yield from self._cycles()

    def _cycles(self) -> Iterator[Problem]:
        """One problem per cycle of nodeName references, at the step that closes it."""
        done: set[str] = set()

        def visit(name: str, path: list[str]) -> Iterator[Problem]:
            for i, step in enumerate(self.nodes[name].steps):
                target = step.node_name
                if target is None or target not in self.nodes or target in done:
                    continue
                if target in path:
                    cycle = " -> ".join([*path[path.index(target) :], target])
                    yield ("nodes", name, "steps", i, "nodeName"), f"nodes call each other in a cycle: {cycle}"
                else:
                    yield from visit(target, [*path, target])
            done.add(name)

        for name in self.nodes:
            if name not in done:
                yield from visit(name, [name])


class InferenceGraph(TopLevelResource):
    api_version: Literal["serving.kserve.io/v1alpha1"]
    kind: Literal["InferenceGraph"]
    spec: InferenceGraphSpec

    def service_names(self) -> set[str]:
        """The InferenceServices (of the graph's namespace) that its steps call."""
        return {s.service_name for node in self.spec.nodes.values() for s in node.steps if s.service_name}

    def to_manifest(self) -> dict[str, Any]:
        """The manifest with every default filled in, in KServe's field names."""
        return self.model_dump(mode="json", exclude_none=True)

    def _problems(self) -> Iterator[Problem]:
        yield from super()._problems()
        for key in self.metadata.annotations:
            if key.startswith(WHARF_PREFIX):
                yield ("metadata", "annotations", key), "Wharf's rollout annotations apply to InferenceServices only"
