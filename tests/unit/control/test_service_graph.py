"""The service graph from the gateway's edges and the store: nodes with their placements, edges named by node and
component, a namespace's part; and the control API's route to it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from wharf.control.api import create_app
from wharf.control.backends import ReplicaState
from wharf.control.controller import Controller
from wharf.control.gateway_process import GatewayProcess
from wharf.control.service_graph import PATH, graph_edges, service_graph
from wharf.gateway.channel import Load
from wharf.gateway.edges import CLIENT, EdgeStats

from .fakes import Backend, Gateway, control_plane

MANIFESTS = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: scaled}
spec:
  transformer:
    model: {modelFormat: {name: custom}, storageUri: models:Scale}
  predictor:
    model: {modelFormat: {name: custom}, storageUri: models:Add}
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: add-one}
spec:
  predictor:
    model: {modelFormat: {name: custom}, storageUri: models:Add}
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: far, namespace: other}
spec:
  predictor:
    model: {modelFormat: {name: custom}, storageUri: models:Add}
---
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {name: chain}
spec:
  nodes:
    root:
      routerType: Sequence
      steps: [{serviceName: add-one}]
"""


def edge(source: str, service: str, revision: str | None, requests: int = 10, errors: int = 0) -> EdgeStats:
    return EdgeStats(source, service, revision, requests, errors, requests / 50, 4.0, 9.0)


EDGES = (
    edge(CLIENT, "default/scaled", "scaled-transformer-00001", errors=2),
    edge("default/scaled/transformer", "default/scaled-predictor", "scaled-predictor-00001"),
    edge("default/chain", "default/add-one", "add-one-predictor-00001", requests=4),
    edge(CLIENT, "default/chain", None, requests=4),
    edge(CLIENT, "other/far", "far-other-predictor-00001", requests=1),
    edge(CLIENT, "default/gone", "gone-predictor-00001"),  # a service deleted since the gateway counted it
)


class RunningBackend(Backend):
    """One ready replica of every revision asked for."""

    def replicas(self, revision: str | None = None) -> list[ReplicaState]:
        return [
            ReplicaState(f"{name}-r0", name, 4242, 41001, 41002, True, 0, None, 0.0)
            for name in self.scaled
            if revision in (None, name)
        ]


class CountingGateway(Gateway):
    def edges(self) -> tuple[EdgeStats, ...]:
        return EDGES


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    controller = control_plane(tmp_path, RunningBackend(), CountingGateway())
    asyncio.run(controller.apply(MANIFESTS))
    return controller


def test_edges_are_named_by_node_and_component(controller: Controller) -> None:
    graph = service_graph(controller.store, controller.reconciler.backend, EDGES, "default")
    edges = {(e["source"], e["sourceComponent"], e["destination"], e["component"]): e for e in graph["edges"]}
    assert set(edges) == {
        (CLIENT, None, "default/scaled", "transformer"),
        ("default/scaled", "transformer", "default/scaled", "predictor"),
        ("default/chain", None, "default/add-one", "predictor"),
        (CLIENT, None, "default/chain", None),
    }
    front = edges[(CLIENT, None, "default/scaled", "transformer")]
    assert front == {
        "source": CLIENT,
        "sourceComponent": None,
        "destination": "default/scaled",
        "component": "transformer",
        "revision": "scaled-transformer-00001",
        "requests": 10,
        "errors": 2,
        "requestsPerSecond": 0.2,
        "errorRatio": 0.2,
        "p50Ms": 4.0,
        "p99Ms": 9.0,
    }
    assert edges[(CLIENT, None, "default/chain", None)]["revision"] is None


def test_nodes_say_where_each_components_revisions_run(controller: Controller) -> None:
    graph = service_graph(controller.store, controller.reconciler.backend, EDGES, "default")
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert set(nodes) == {CLIENT, "default/chain", "default/scaled", "default/add-one"}
    assert nodes[CLIENT] == {"id": CLIENT, "kind": "Client"}
    assert nodes["default/chain"]["kind"] == "InferenceGraph"
    scaled = nodes["default/scaled"]
    assert (scaled["kind"], scaled["namespace"], scaled["name"]) == ("InferenceService", "default", "scaled")
    assert set(scaled["components"]) == {"transformer", "predictor"}
    (revision,) = scaled["components"]["predictor"]["revisions"]
    assert revision == {
        "name": "scaled-predictor-00001",
        "trafficPercent": 100,
        "shadowPercent": 0,
        "replicas": [
            {"id": "scaled-predictor-00001-r0", "ready": True, "pid": 4242, "httpPort": 41001, "grpcPort": 41002}
        ],
    }


def test_every_namespace_unless_one_is_asked_for(controller: Controller) -> None:
    everything = service_graph(controller.store, controller.reconciler.backend, EDGES)
    assert "other/far" in {node["id"] for node in everything["nodes"]}
    assert ("other/far", 1) in {(e["destination"], e["requests"]) for e in everything["edges"]}
    assert graph_edges(controller.store, EDGES) == everything["edges"]  # what the cost report carries
    quiet = service_graph(controller.store, controller.reconciler.backend, EDGES[4:5], "default")
    assert quiet["edges"] == [] and CLIENT not in {node["id"] for node in quiet["nodes"]}


def test_the_control_api_answers_the_service_graph(controller: Controller) -> None:
    async def ask(params: dict[str, str]) -> dict[str, Any]:
        transport = httpx.ASGITransport(create_app(controller))  # in this thread: the store's connection is its
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answer = await client.get(PATH, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    in_default = asyncio.run(ask({"namespace": "default"}))
    assert (len(in_default["edges"]), len(in_default["nodes"])) == (4, 4)
    assert len(asyncio.run(ask({}))["edges"]) == 5


def test_a_gateway_of_an_earlier_release_reports_no_edges(tmp_path: Path) -> None:
    older = Load.__new__(Load)
    older.__setstate__([{}, {"sent": 1}])  # what unpickling its Load does: the fields it had, and no `edges`
    adopted = GatewayProcess(tmp_path)
    adopted._load = older
    assert (adopted.payload_counts(), adopted.edges()) == ({"sent": 1}, ())
