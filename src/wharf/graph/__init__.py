"""Inference graph execution: KServe's Sequence, Switch, Ensemble and Splitter routers, and Wharf's Bandit, over
plain data.

Build `Node`s (the control plane converts a parsed spec with `wharf.control.graph_plan`; this package depends on
nothing of Wharf's but `wharf.errors` and the pure `wharf.bandit`), then run requests with a `GraphRunner` and a `Call`
that reaches services and URLs. Conditions are the GJSON subset `wharf.graph.condition` documents.
"""

from wharf.graph.condition import Condition, parse_condition
from wharf.graph.nodes import ROOT, CallTarget, Node, NodeTarget, RouterType, ServiceTarget, Step, Target, UrlTarget
from wharf.graph.protocols import ServiceCall, service_call
from wharf.graph.runner import Call, Choose, GraphRunner, Headers, Rng, StepAnswer, StepFailed

__all__ = [
    "ROOT",
    "Call",
    "Choose",
    "CallTarget",
    "Condition",
    "GraphRunner",
    "Headers",
    "Node",
    "NodeTarget",
    "Rng",
    "RouterType",
    "ServiceCall",
    "ServiceTarget",
    "Step",
    "StepAnswer",
    "StepFailed",
    "Target",
    "UrlTarget",
    "parse_condition",
    "service_call",
]
