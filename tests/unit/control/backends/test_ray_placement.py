"""Where the Ray backend places replicas: the resources an actor reserves, the node a new replica goes to, and
why one waits (Pending)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wharf.control.backends import ReplicaResources, ReplicaSpec
from wharf.control.backends.node_selection import NodeSelection
from wharf.control.backends.ray import _asked, _refused_on, _shortage, namespace_of, placement, spread_to

NODES = {"a": {"CPU": 1.0, "memory": 2e9}, "b": {"CPU": 1.0, "memory": 2e9}, "c": {"CPU": 4.0, "GPU": 1.0}}


def _spec(resources: ReplicaResources) -> ReplicaSpec:
    return ReplicaSpec("r-1", "m", "file:///m", resources=resources)


def test_resources_become_the_actors_reservation_and_none_reserves_nothing() -> None:
    assert placement(_spec(ReplicaResources())) == {"num_cpus": 0, "num_gpus": 0}
    limited = placement(_spec(ReplicaResources(memory=2**30, cpus=1.5, gpus=1)))
    assert limited == {"num_cpus": 1.5, "num_gpus": 1, "memory": 2**30}
    assert _asked(limited) == {"CPU": 1.5, "GPU": 1.0, "memory": float(2**30)}


def test_a_new_replica_goes_to_the_big_enough_node_holding_fewest_of_its_revision() -> None:
    assert spread_to(NODES, [], {}) == "a"
    assert spread_to(NODES, ["a"], {}) == "b"
    assert spread_to(NODES, ["a", "b"], {}) == "c"
    assert spread_to(NODES, ["a", "b", "c", "a"], {}) == "b"
    assert spread_to(NODES, ["c"], {"GPU": 1.0}) == "c"  # the only node with a GPU, however full of the revision
    assert spread_to(NODES, [], {"CPU": 8.0}) is None  # none big enough: Ray keeps it pending


class _Cluster:
    """What `_shortage` asks of Ray: its nodes and the resources free."""

    def nodes(self) -> list[dict[str, Any]]:
        alive = [{"Alive": True, "Resources": r, "Labels": {"name": name}} for name, r in NODES.items()]
        return alive + [{"Alive": False, "Resources": {"CPU": 64}}]

    def available_resources(self) -> dict[str, float]:
        return {"CPU": 0.5}


def test_a_pending_replica_says_whether_no_node_is_big_enough_or_the_nodes_are_busy() -> None:
    too_big = _shortage(_Cluster(), {"CPU": 8.0}, NodeSelection())
    assert too_big == "Pending: no node of the Ray cluster has 8 CPU (of 3 nodes; an autoscaler may add one)"
    busy = _shortage(_Cluster(), {"CPU": 1.0, "memory": 2**30}, NodeSelection())
    assert (
        busy
        == "Pending: waiting for a Ray node with 1 CPU, 1024 MiB memory free (the cluster has 0.5 CPU, 0 MiB memory free in all)"
    )


def test_a_replica_whose_labels_no_node_carries_says_so() -> None:
    on_c = NodeSelection((("name", "c"),))
    assert _shortage(_Cluster(), {"CPU": 1.0}, on_c).startswith("Pending: waiting for a Ray node")  # c is busy
    nowhere = _shortage(_Cluster(), {"CPU": 1.0}, NodeSelection((("name", "d"),)))
    assert (
        nowhere
        == "Pending: no node of the Ray cluster has 1 CPU, labels name=d (of 3 nodes; an autoscaler may add one)"
    )


def test_each_wharf_home_has_a_namespace_of_its_own(tmp_path: Path) -> None:
    assert namespace_of(tmp_path / "a") == namespace_of(tmp_path / "a")
    assert namespace_of(tmp_path / "a") != namespace_of(tmp_path / "b")
    assert namespace_of(tmp_path / "a").startswith("wharf-")


class _Joined:
    """A cluster whose node `new` joined, tainted, after an actor was made."""

    def nodes(self) -> list[dict[str, Any]]:
        return [
            {"NodeID": "old", "Alive": True, "Labels": {}},
            {"NodeID": "new", "Alive": True, "Labels": {"taint.wharf.io/dedicated": "gpu"}},
        ]


def test_a_replica_placed_on_a_node_whose_taint_it_does_not_tolerate_is_refused_there() -> None:
    refused = _refused_on(_Joined(), "new", NodeSelection())
    assert refused is not None and "node new" in refused and "does not tolerate" in refused
    assert _refused_on(_Joined(), "old", NodeSelection()) is None
    tolerant = NodeSelection.from_kubernetes(None, [{"key": "dedicated", "operator": "Exists"}])
    assert _refused_on(_Joined(), "new", tolerant) is None
