"""`wharf up --backend ray` on a local Ray cluster of three nodes (`tests/ray_cluster.py`), one daemon for the
module: the canary rollout test of the local backend (split, tags, promotion, rollback) and its scale to zero and
back run unchanged on Ray; three replicas spread over the three nodes serve through the gateway, and when a worker
node goes away under load no more requests fail than were in flight on it and three replicas are ready again within
30 s; a `wharf up` restarted after a crash adopts the three actors (and a KafkaSource's member actor) instead of
starting them again; meanwhile a replica that no node can hold shows Pending with the reason. A component's
nodeSelector puts its replica on the one node labelled so (the first worker). A KafkaSource's member runs as a Ray actor (its status at its node's address),
answers the messages through the gateway, is started again when its process is killed, and its actor stops with
the source.

The tests run in this order, on one daemon: each deletes its service; the last one takes a node away."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import test_autoscaling, test_rollouts
from tests.e2e.conftest import Daemon, manifest, start_daemon
from tests.e2e.test_kafka_sources import (
    answers_for,
    apply,
    condition,
    delete,
    fresh_topics,
    ids_of,
    kafka_source,
    members,
    ref,
    source_of,
    v2,
    wait_until,
)
from tests.e2e.test_resilience import Load, _ready_replicas, _wait_recorded_ready
from tests.kafka_broker import Broker, kafka_broker, produce  # noqa: F401 - the module's broker fixture
from tests.ray_cluster import LOOPBACK, RayCluster, ray_cluster  # noqa: F401 - the module's cluster fixture
from wharf.control.backends.ray import namespace_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
CLIENTS = 4  # concurrent clients of the load: at most this many requests are in flight on any node
RAY_WORKER_LABELS = [{"disk": "ssd"}]  # the first worker's: the one node a nodeSelector of disk=ssd admits


@pytest.fixture(scope="module")
def ray_daemon(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:  # noqa: F811
    """`wharf up` with its replicas on the cluster (WHARF_BACKEND=ray: the settings `--backend ray` sets)."""
    home = tmp_path_factory.mktemp("ray-daemon") / "home"
    daemon = start_daemon(home, env=_on_ray(ray_cluster))
    yield daemon
    daemon.stop()


def _on_ray(cluster: RayCluster) -> dict[str, str]:
    return {**LOOPBACK, "WHARF_BACKEND": "ray", "WHARF_RAY_ADDRESS": cluster.address}


def test_rollouts_run_on_ray_as_they_do_locally(ray_daemon: Daemon) -> None:
    test_rollouts.test_canary_split_tags_promotion_and_rollback(ray_daemon)  # deletes its service


def test_scale_to_zero_and_back_on_ray(ray_daemon: Daemon) -> None:
    test_autoscaling.test_idle_scales_to_zero_and_the_next_request_brings_a_replica_back(ray_daemon)
    ray_daemon.wharf("delete", "isvc", "who")


def test_a_kafka_sources_member_runs_on_ray(
    ray_daemon: Daemon,
    ray_cluster: RayCluster,  # noqa: F811
    kafka_broker: Broker,  # noqa: F811
) -> None:
    ray_daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    topics = fresh_topics(kafka_broker, partitions=1)
    apply(ray_daemon, kafka_source("feed", kafka_broker.bootstrap, topics, ref("InferenceService", "who")))
    ids = {f"m{i}" for i in range(20)}
    produce(kafka_broker.bootstrap, topics["requests"], [(b"k", v2(), [("id", i.encode())]) for i in sorted(ids)])
    assert ids_of(answers_for(kafka_broker.bootstrap, topics, ids, timeout=90)) >= ids
    [killed] = members(source_of(ray_daemon, "feed"))
    os.kill(killed["pid"], signal.SIGKILL)  # its process on its node (this machine): the member starts again
    [member] = wait_until(
        lambda: [m for m in members(source_of(ray_daemon, "feed")) if m["pid"] not in (0, killed["pid"])], "restarted"
    )
    assert member["id"] == killed["id"] and member["restarts"] == 1 and "status -9" in member["lastError"]
    ray, namespace = _ray(ray_daemon, ray_cluster), f"{namespace_of(ray_daemon.home)}-kafka"
    actor = ray.get_actor(member["id"], namespace)  # the member is a Ray actor, its status at its node's address
    assert ray.get(actor.where.remote(), timeout=30)["host"] == member["host"]
    delete(ray_daemon, "feed")
    wait_until(lambda: member["id"] not in _named(ray, namespace), "the member's actor stopped")
    ray_daemon.wharf("delete", "isvc", "who")


def _ray(daemon: Daemon, cluster: RayCluster) -> Any:
    """Ray, joined to the cluster in the daemon's namespace (imported here: once the cluster fixture has set up
    the environment it reads)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=cluster.address, namespace=namespace_of(daemon.home), log_to_driver=False)
    return ray


def _named(ray: Any, namespace: str) -> set[str]:
    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == namespace}


def _nodes(daemon: Daemon, cluster: RayCluster, replicas: list[str]) -> dict[str, str]:
    """The Ray node each of `replicas` (ids) runs on, asked of its actor."""
    ray = _ray(daemon, cluster)
    return {replica: ray.get(ray.get_actor(replica).where.remote(), timeout=30)["node_id"] for replica in replicas}


def test_three_replicas_on_three_nodes_survive_the_loss_of_a_node(
    ray_daemon: Daemon,
    ray_cluster: RayCluster,  # noqa: F811
    kafka_broker: Broker,  # noqa: F811
) -> None:
    big = manifest("big", "a").replace("      modelFormat", "      resources: {limits: {cpu: '8'}}\n      modelFormat")
    three = manifest("who", "a", predictor={"minReplicas": 3, "maxReplicas": 3}, sleep_s=0.02)
    selected = manifest("ssd", "a").replace("  predictor:\n", "  predictor:\n    nodeSelector: {disk: ssd}\n")
    ray_daemon.wharf("apply", "-f", "-", stdin="---\n".join([big, three, selected]))
    pending = ray_daemon.wait("big", lambda s: any(r["pending"] for r in s["status"].get("replicaStates", [])))
    assert pending["status"]["replicaStates"][0]["pending"].startswith("Pending: no node of the Ray cluster has 8 CPU")
    assert "Pending: no node of the Ray cluster has 8 CPU" in ray_daemon.wharf("describe", "isvc", "big").stdout
    ray_daemon.wharf("delete", "isvc", "big")
    service = ray_daemon.wait("who", lambda s: len(_ready_replicas(s)) == 3, timeout=90)
    nodes = _nodes(ray_daemon, ray_cluster, [r["id"] for r in _ready_replicas(service)])
    assert len(set(nodes.values())) == 3, nodes  # spread: one on each node
    [ssd] = _ready_replicas(ray_daemon.wait("ssd", lambda s: len(_ready_replicas(s)) == 1))
    assert _nodes(ray_daemon, ray_cluster, [ssd["id"]]) == {ssd["id"]: ray_cluster.workers[0].node_id}  # labelled
    ray_daemon.wharf("delete", "isvc", "ssd")

    with Load(ray_daemon, CLIENTS) as load:
        load.until(40)  # steady: every replica has requests in flight
        gone = ray_cluster.remove_worker().node_id
        removed = time.monotonic()
        victims = {replica for replica, node in nodes.items() if node == gone}
        pids = {r["pid"] for r in _ready_replicas(service) if r["id"] in victims}
        back = ray_daemon.wait(
            "who",
            lambda s: len(_ready_replicas(s)) == 3 and not pids & {r["pid"] for r in _ready_replicas(s)},
            timeout=30,
        )
        assert time.monotonic() - removed < 30
        load.until(40)  # and it goes on
    assert len(victims) == 1
    # At most the requests in flight on the node that went away.
    assert len(load.failures) <= CLIENTS, load.failures
    assert any(r["restarts"] == 1 for r in back["status"]["replicaStates"] if r["id"] in victims)

    topics = fresh_topics(kafka_broker, partitions=1)  # a KafkaSource's member actor is adopted too
    apply(ray_daemon, kafka_source("feed", kafka_broker.bootstrap, topics, ref("InferenceService", "who")))
    [member] = wait_until(
        lambda: condition(s := source_of(ray_daemon, "feed")).get("status") == "True" and members(s), ""
    )
    _wait_recorded_ready(ray_daemon, 3)  # a resync records the replicas for adoption
    before = {(r["id"], r["pid"], r["restarts"]) for r in _ready_replicas(ray_daemon.isvc("who"))}
    assert ray_daemon.stop(signal.SIGKILL) == -signal.SIGKILL  # a crash: the detached actors keep serving
    vars(ray_daemon).update(vars(start_daemon(ray_daemon.home, env=_on_ray(ray_cluster))))  # the fixture stops it
    adopted = ray_daemon.wait("who", lambda s: len(_ready_replicas(s)) == 3)
    assert {(r["id"], r["pid"], r["restarts"]) for r in _ready_replicas(adopted)} == before  # none started again
    [taken] = wait_until(  # once the new daemon has written its record (startedAt: when it took the member back)
        lambda: [m for m in members(source_of(ray_daemon, "feed")) if m["startedAt"] != member["startedAt"]], "adopted"
    )
    assert (taken["id"], taken["pid"], taken["restarts"]) == (member["id"], member["pid"], member["restarts"])
    delete(ray_daemon, "feed")
    ray_daemon.wharf("delete", "isvc", "who")
