"""A local Ray cluster of three nodes for the Ray backend's tests: a head and two workers on this machine, one CPU
and a small object store each, every node (and every driver) bound to 127.0.0.1.

With RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 each node takes the loopback address as its own, as Ray does on a laptop;
Ray reads that setting when it is imported, so Ray is imported only once it is set, and the `wharf up` processes the
tests start inherit it. The cluster must start: a test that cannot start Ray fails, it never skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
NODE = {"num_cpus": 1, "object_store_memory": 80 * 2**20, "node_ip_address": "127.0.0.1"}
NODES = 3


@dataclass
class RayCluster:
    """The started cluster: its `address` (for `ray.init` and `wharf up --ray-address`), and its worker nodes, which
    a test may remove (`remove_worker`)."""

    cluster: Any
    workers: list[Any]

    @property
    def address(self) -> str:
        return self.cluster.address

    def remove_worker(self) -> Any:
        """Take a worker node away (its raylet and every actor on it killed); the node removed."""
        node = self.workers.pop()
        self.cluster.remove_node(node, allow_graceful=False)
        return node

    def add_worker(self) -> None:
        self.workers.append(self.cluster.add_node(**NODE))
        self.cluster.wait_for_nodes()


@pytest.fixture(scope="module")
def ray_cluster(request: pytest.FixtureRequest) -> Iterator[RayCluster]:
    """Three nodes of one CPU each (or the module's `RAY_NODES`: a head takes 8 s to start, each worker 7 s more),
    the workers labelled as the module's `RAY_WORKER_LABELS` says (the first worker's labels first), shut down after
    the module (with any driver the module's code connected)."""
    nodes = getattr(request.module, "RAY_NODES", NODES)
    labels = list(getattr(request.module, "RAY_WORKER_LABELS", ()))
    saved = {key: os.environ.get(key) for key in LOOPBACK}
    os.environ.update(LOOPBACK)
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        workers = [cluster.add_node(**NODE, labels=labels[i] if i < len(labels) else {}) for i in range(nodes - 1)]
        cluster.wait_for_nodes()
        yield RayCluster(cluster, workers)
    finally:
        ray.shutdown()
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
