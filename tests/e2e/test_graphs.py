"""InferenceGraphs on `wharf up`: Sequence with `$response`, Switch, Ensemble and Splitter over real services; and
the service graph of who called whom (graphs, a transformer, clients)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Daemon, custom_service, graph, ready
from tests.e2e.test_transformers import scaled

ADDERS = "".join(
    custom_service(f"add-{name}", "wharf_test_models:Add", env={"ADD": str(amount)})
    for name, amount in (("one", 1), ("ten", 10))
)
GRAPHS = (
    graph(
        "chain",
        "Sequence",
        {"name": "first", "serviceName": "add-one"},
        {"name": "second", "serviceName": "add-ten", "data": "$response"},
    )
    + graph(
        "pick",
        "Switch",
        {"serviceName": "add-one", "condition": '[@this].#(route=="one")'},
        {"serviceName": "add-ten", "condition": '[@this].#(route=="ten")'},
    )
    + graph(
        "decide",
        "Sequence",
        {"name": "first", "serviceName": "add-one"},
        {"name": "then", "nodeName": "by-prediction", "data": "$response"},
        nodes={
            "by-prediction": {
                "routerType": "Switch",
                "steps": [
                    {"serviceName": "add-ten", "condition": "[@this].#(predictions.0.0>5)"},
                    {"serviceName": "add-one", "condition": "[@this].#(predictions.0.0<=5)"},
                ],
            }
        },
    )
    + graph("both", "Ensemble", {"name": "one", "serviceName": "add-one"}, {"name": "ten", "serviceName": "add-ten"})
    + graph("split", "Splitter", {"serviceName": "add-one", "weight": 80}, {"serviceName": "add-ten", "weight": 20})
)


@pytest.fixture
def graphs(daemon: Daemon) -> Iterator[httpx.Client]:
    daemon.wharf("apply", "-f", "-", stdin=ADDERS + GRAPHS)
    daemon.wait("add-one", ready)
    daemon.wait("add-ten", ready)
    with httpx.Client(base_url=daemon.gateway_url, timeout=20) as client:
        yield client


def _ask(client: httpx.Client, graph: str, body: dict) -> dict:
    answer = client.post("/", json=body, headers={"host": f"{graph}.default.example.com"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_graph_routers_over_real_services(daemon: Daemon, graphs: httpx.Client) -> None:
    assert _ask(graphs, "chain", {"instances": [[1.0]]}) == {"predictions": [[12.0]]}  # (1 + 1) + 10
    assert _ask(graphs, "pick", {"instances": [[1.0]], "route": "ten"}) == {"predictions": [[11.0]]}
    assert _ask(graphs, "pick", {"instances": [[1.0]], "route": "one"}) == {"predictions": [[2.0]]}
    assert _ask(graphs, "decide", {"instances": [[1.0]]}) == {"predictions": [[3.0]]}  # 2 is small: add one
    assert _ask(graphs, "decide", {"instances": [[10.0]]}) == {"predictions": [[21.0]]}  # 11 is large: add ten
    assert _ask(graphs, "both", {"instances": [[1.0]]}) == {
        "one": {"predictions": [[2.0]]},
        "ten": {"predictions": [[11.0]]},
    }
    picked = Counter(_ask(graphs, "split", {"instances": [[0.0]]})["predictions"][0][0] for _ in range(200))
    assert 0.70 < picked[1.0] / 200 < 0.90, picked  # 80% within about 3.5 standard deviations
    by_path = graphs.post("/serving/default/chain", json={"instances": [[0.0]]})
    assert by_path.json() == {"predictions": [[11.0]]}

    chain = json.loads(daemon.wharf("get", "ig", "chain", "-o", "json").stdout)
    assert chain["status"]["url"] == "http://chain.default.example.com" and ready(chain)
    assert len(json.loads(daemon.wharf("get", "ig", "-o", "json").stdout)["items"]) == 5


def test_a_failing_step_is_named(daemon: Daemon, graphs: httpx.Client) -> None:
    answer = graphs.post("/", json={"instances": [["not a number"]]}, headers={"host": "chain.default.example.com"})
    assert answer.status_code == 400
    assert "step 'first' of node 'root' failed" in answer.json()["error"]
    outside = graph("chain", "Sequence", {"name": "first", "serviceUrl": "http://x/"})
    refused = daemon.wharf("apply", "-f", "-", check=False, stdin=outside)
    assert refused.returncode == 1 and "serviceUrl" in refused.stderr


def test_the_service_graph_shows_who_called_whom(daemon: Daemon, graphs: httpx.Client) -> None:
    daemon.wharf("apply", "-f", "-", stdin=scaled("v1", add=1))
    daemon.wait("scaled", ready)
    for _ in range(3):
        assert _ask(graphs, "chain", {"instances": [[1.0]]}) == {"predictions": [[12.0]]}
    host = {"host": "scaled.default.example.com"}
    for _ in range(2):
        answer = graphs.post("/v1/models/scaled:predict", json={"instances": [[1.0]]}, headers=host)
        assert answer.json()["predictions"][0]["y"] == [4.0]  # x * 3 in the transformer, then + 1
    # The predictor does not explain: 501 through the transformer, an error on both edges.
    assert graphs.post("/v1/models/scaled:explain", json={"instances": [[1.0]]}, headers=host).status_code == 501
    expected = {
        ("client", None, "default/chain", None): (3, 0),
        ("default/chain", None, "default/add-one", "predictor"): (3, 0),
        ("default/chain", None, "default/add-ten", "predictor"): (3, 0),
        ("client", None, "default/scaled", "transformer"): (3, 1),
        ("default/scaled", "transformer", "default/scaled", "predictor"): (3, 1),
    }
    with daemon.control() as control:
        deadline = time.monotonic() + 10  # the gateway pushes its figures every 0.25 s
        while True:
            answer = control.get("/apis/wharf.dev/v1/servicegraph", params={"namespace": "default"})
            assert answer.status_code == 200, answer.text
            edges = {
                (e["source"], e["sourceComponent"], e["destination"], e["component"]): e for e in answer.json()["edges"]
            }
            if {key: (e["requests"], e["errors"]) for key, e in edges.items()} == expected:
                break
            assert time.monotonic() < deadline, edges
            time.sleep(0.2)
    calls = edges[("default/scaled", "transformer", "default/scaled", "predictor")]
    assert calls["revision"] == "scaled-predictor-00001" and calls["requestsPerSecond"] > 0 and calls["p99Ms"] > 0
    nodes = {node["id"]: node for node in answer.json()["nodes"]}
    assert {"client", "default/chain", "default/add-one", "default/add-ten", "default/scaled"} <= set(nodes)
    (predictor,) = nodes["default/scaled"]["components"]["predictor"]["revisions"]
    (replica,) = predictor["replicas"]
    assert predictor["trafficPercent"] == 100 and replica["ready"] and replica["pid"] > 0 and replica["httpPort"] > 0
