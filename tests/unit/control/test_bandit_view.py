"""The figures a person reads of a graph's bandit: per arm its counts, share and chance of the next request (none
for an arm whose service is not ready), as the control API answers them and `wharf describe` prints them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from wharf.bandit.arms import ArmStats
from wharf.bandit.policies import EpsilonGreedy
from wharf.cli.tables import bandit_tables
from wharf.control.bandit_state import BanditState
from wharf.control.bandit_view import arm_figures, graph_figures
from wharf.control.plan import ISVC_KIND
from wharf.control.store import Store
from wharf.errors import NotFound
from wharf.gateway.bandits import BanditReport, graph_bandit

GRAPH = {
    "apiVersion": "serving.kserve.io/v1alpha1",
    "kind": "InferenceGraph",
    "metadata": {"name": "pick", "namespace": "default"},
    "spec": {
        "nodes": {
            "root": {
                "routerType": "Bandit",
                "policy": "EpsilonGreedy",
                "parameters": {"epsilon": 0.2},
                "steps": [{"serviceName": "a"}, {"name": "second", "serviceName": "b"}, {"serviceName": "c"}],
            }
        }
    },
}


def test_arm_figures_leave_out_arms_that_are_not_ready() -> None:
    counts = {"a": ArmStats("a", pulls=6).rewarded(1.0), "b": ArmStats("b", pulls=2).rewarded(0.0)}
    figures = arm_figures(
        EpsilonGreedy(epsilon=0.2), [("a", True), ("b", True), ("c", False)], counts, random.Random(0)
    )
    arms = {arm["name"]: arm for arm in figures["arms"]}
    assert figures["pulls"] == 8 and figures["parameters"]["epsilon"] == 0.2
    assert (arms["a"]["share"], arms["a"]["meanReward"], arms["c"]["share"]) == (0.75, 1.0, 0.0)
    assert arms["a"]["probability"] == pytest.approx(0.9) and arms["b"]["probability"] == pytest.approx(0.1)
    assert arms["c"]["probability"] == 0.0 and arms["c"]["meanReward"] is None


def test_a_graphs_figures_and_how_describe_prints_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "wharf.db")
    state = BanditState(tmp_path / "wharf.db")
    graph, _ = store.put("InferenceGraph", "default", "pick", GRAPH)
    for name in ("a", "b", "c"):
        store.put(ISVC_KIND, "default", name, {"metadata": {"name": name}})
        if name != "c":
            store.set_status(ISVC_KIND, "default", name, {"conditions": [{"type": "Ready", "status": "True"}]})
    key = graph_bandit("default", "pick", graph.uid, "root")
    state.apply(BanditReport("g1", {key: {"a": ArmStats("a", pulls=3).rewarded(1.0)}}))
    figures = graph_figures(store, state, "default", "pick")
    root = figures["nodes"]["root"]
    assert root["key"] == key and root["policy"] == "EpsilonGreedy"
    assert [(a["name"], a["service"], a["ready"], a["pulls"]) for a in root["arms"]] == [
        ("a", "a", True, 3),
        ("second", "b", True, 0),
        ("c", "c", False, 0),
    ]
    printed = bandit_tables(figures).splitlines()
    assert printed[0].startswith("Bandit root:  EpsilonGreedy (") and printed[0].endswith(", 3 pulls")
    assert printed[1].split() == ["ARM", "SERVICE", "READY", "PULLS", "REWARDS", "MEAN", "SHARE", "NEXT"]
    assert printed[2].split()[:7] == ["a", "a", "True", "3", "1", "1.000", "100.0%"]
    assert printed[4].split()[2:] == ["False", "0", "0", "-", "0.0%", "0.0%"]
    with pytest.raises(NotFound):
        graph_figures(store, state, "default", "nothing")
