"""Converting a parsed KServe InferenceGraph into the runner's plain nodes."""

from __future__ import annotations

import random

import orjson
import pytest
import yaml

from tests.unit.graph.fakes import FakeCall
from wharf.control.graph_plan import graph_route, nodes_from_spec
from wharf.control.spec import InferenceGraph, SpecError
from wharf.control.spec.manifests import parse_manifest
from wharf.graph import GraphRunner, Node, NodeTarget, ServiceTarget, Step, UrlTarget, parse_condition

MANIFEST = """
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: dog-breed
spec:
  timeout: 7
  nodes:
    root:
      routerType: Sequence
      steps:
      - serviceName: cat-dog-classifier
        name: classify
      - nodeName: breeds
        data: $response
        condition: "[@this].#(predictions.0==\\"dog\\")"
        dependency: Hard
    breeds:
      routerType: Ensemble
      steps:
      - serviceUrl: http://breeds.example.com/v1/models/breeds:predict
      - serviceName: breed-b
        name: second
"""


def spec_of(text: str) -> InferenceGraph:
    manifest = parse_manifest(yaml.safe_load(text))
    assert isinstance(manifest, InferenceGraph)
    return manifest


def test_a_kserve_graph_becomes_plain_nodes() -> None:
    nodes = nodes_from_spec(spec_of(MANIFEST).spec)

    assert nodes == {
        "root": Node(
            "Sequence",
            (
                Step("classify", ServiceTarget("cat-dog-classifier")),
                Step(
                    "1",
                    NodeTarget("breeds"),
                    pass_response=True,
                    condition=parse_condition('[@this].#(predictions.0=="dog")'),
                    hard=True,
                ),
            ),
        ),
        "breeds": Node(
            "Ensemble",
            (
                Step("0", UrlTarget("http://breeds.example.com/v1/models/breeds:predict")),
                Step("second", ServiceTarget("breed-b")),
            ),
        ),
    }


@pytest.mark.anyio
async def test_a_graph_route_runs_with_the_spec_timeout_per_step() -> None:
    call = FakeCall()
    served = MANIFEST.replace("serviceUrl: http://breeds.example.com/v1/models/breeds:predict", "serviceName: breed-a")
    route = graph_route("default", "g", spec_of(served).to_manifest())
    assert route.step_timeout_s == 7
    graph = GraphRunner(route.nodes, call, random.Random(0), step_timeout_s=route.step_timeout_s)
    status, body = await graph.run(b'{"instances": [1]}', {})
    assert status == 200 and call.called == ["cat-dog-classifier"]
    assert orjson.loads(body)["by"] == "cat-dog-classifier"


def test_unsupported_conditions_and_fields_are_spec_errors_naming_the_field() -> None:
    text = MANIFEST.replace('"[@this].#(predictions.0==\\"dog\\")"', '"friends|0"').replace(
        "name: second", "name: second\n        mapPredictionsToInstances: true"
    )
    with pytest.raises(SpecError) as caught:
        nodes_from_spec(spec_of(text).spec)

    assert dict(caught.value.problems) == {
        "spec.nodes.root.steps[1].condition": (
            "condition 'friends|0': the pipe is not supported"
            " ('|' in 'friends|0'; '\\' before it makes it part of the key)"
        ),
        "spec.nodes.breeds.steps[1].mapPredictionsToInstances": "not supported by Wharf's graph router",
    }


def test_a_graph_route_refuses_service_url_steps() -> None:
    with pytest.raises(SpecError, match="serviceUrl"):
        graph_route("default", "g", spec_of(MANIFEST).to_manifest())
