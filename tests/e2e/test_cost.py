"""Cost and utilisation on one `wharf up`: a service kept at minReplicas 3 with no traffic is named over-scaled,
and one held at maxReplicas 1 (containerConcurrency 1, a model that takes 0.2 s) under eight clients at once is
named under-scaled, each with its numbers; `wharf top` shows both with their CPU and memory read from their
processes, and the usage metrics are on the control plane's /metrics. Usage is sampled every 0.5 s here."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Daemon, manifest, ready, start_daemon

IDLE = manifest("idle", "a", predictor={"minReplicas": 3})
BUSY = manifest("busy", "b", predictor={"minReplicas": 1, "maxReplicas": 1, "containerConcurrency": 1}, sleep_s=0.2)
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
CLIENTS = 8
LOAD_S = 10.0


@dataclass
class Loaded:
    daemon: Daemon
    top: str  # `wharf top -A --once` while the load ran
    statuses: list[int]


def _all_ready(service: dict, replicas: int) -> bool:
    return ready(service) and sum(r["ready"] for r in service["status"]["replicaStates"]) == replicas


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """`idle` ready and left alone; `busy` applied once `idle` is ready (so that its time before the load is
    short), then asked by eight clients at once for ten seconds."""
    env = {"WHARF_USAGE_SAMPLE_S": "0.5", "WHARF_USAGE_MIN_OBSERVED_S": "3"}
    daemon = start_daemon(tmp_path_factory.mktemp("cost") / "home", env=env)
    try:
        daemon.wharf("apply", "-f", "-", stdin=IDLE)
        daemon.wait("idle", lambda s: _all_ready(s, 3), timeout=90)
        daemon.wharf("apply", "-f", "-", stdin=BUSY)
        daemon.wait("busy", lambda s: _all_ready(s, 1), timeout=90)
        statuses: list[int] = []
        stop = threading.Event()

        def ask() -> None:
            with httpx.Client(
                base_url=daemon.gateway_url, timeout=30, headers={"host": "busy.default.example.com"}
            ) as c:
                while not stop.is_set():
                    statuses.append(c.post("/v2/models/busy/infer", json=BODY).status_code)

        clients = [threading.Thread(target=ask) for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        try:
            time.sleep(LOAD_S / 2)
            top = daemon.wharf("top", "-A", "--once").stdout
            time.sleep(LOAD_S / 2)
        finally:
            stop.set()
            for client in clients:
                client.join(30)
        yield Loaded(daemon, top, statuses)
    finally:
        daemon.stop()


def test_cost_names_the_idle_minimum_over_scaled_and_the_queue_at_the_maximum_under_scaled(loaded: Loaded) -> None:
    assert loaded.statuses and set(loaded.statuses) == {200}
    report = json.loads(loaded.daemon.wharf("cost", "--since", "10m", "-o", "json").stdout)
    revisions = {r["service"]: r for r in report["revisions"]}

    idle = revisions["idle"]
    assert idle["verdict"] == "over-scaled", idle
    assert idle["recommendation"]["rule"] == "idle-min-replicas"
    assert idle["recommendation"]["change"] == {"minReplicas": 0}
    figures = idle["figures"]
    assert figures["requests"] == 0 and figures["idleShare"] == 1.0 and figures["replicasMax"] == 3
    assert figures["replicaSeconds"] > 3 * 3  # observed for a while with three replicas
    assert figures["memoryAvgBytes"] > 10 * 2**20 and figures["cpuSeconds"] >= 0

    busy = revisions["busy"]
    assert busy["verdict"] == "under-scaled", busy
    assert busy["recommendation"]["rule"] == "held-at-max-replicas"
    assert busy["recommendation"]["change"]["maxReplicas"] >= CLIENTS  # one replica per request at once, at least
    figures = busy["figures"]
    assert figures["atMaxShare"] >= 0.9 and figures["waitingMax"] >= CLIENTS - 2 and figures["requests"] > 20
    assert figures["queueingShare"] >= 0.5 and figures["concurrencyMax"] >= CLIENTS - 1
    [edge] = [e for e in report["edges"] if e["destination"] == "default/busy"]  # the service graph's, carried
    assert edge["source"] == "client" and edge["requests"] > 0

    text = loaded.daemon.wharf("cost", "--since", "10m").stdout
    assert "over-scaled  default/idle (predictor idle-predictor-00001): minReplicas 3 kept" in text
    assert "lower minReplicas to 0" in text
    assert "under-scaled  default/busy (predictor busy-predictor-00001): held at maxReplicas 1" in text
    assert "raise maxReplicas to" in text and "raise containerConcurrency from 1" in text


def test_top_shows_every_revision_and_replica_with_cpu_and_memory_read_from_its_process(loaded: Loaded) -> None:
    revisions, replicas = loaded.top.split("\n\n")
    rows = {line.split()[1]: line.split() for line in revisions.splitlines()[1:]}  # by service, after NAMESPACE
    assert set(rows) == {"idle", "busy"}
    assert rows["idle"][3] == "3/3" and rows["busy"][3] == "1/1"
    assert int(rows["busy"][6]) > 0  # requests waiting for the one replica (WAITING)
    replica_rows = [line.split() for line in replicas.splitlines()[1:]]
    assert len(replica_rows) == 4
    for row in replica_rows:
        cpu_seconds, memory = float(row[-2]), row[-1]
        assert cpu_seconds > 0 and memory.endswith("Mi") and int(memory[:-2]) > 0, row


def test_the_usage_metrics_are_on_the_control_plane(loaded: Loaded) -> None:
    with loaded.daemon.control() as control:
        text = control.get("/metrics").text
        refused = control.get("/apis/wharf.dev/v1/usage/cost", params={"since": "-1"})
    assert refused.status_code == 400 and refused.json()["error"].startswith("since:")
    samples = {
        (s.name, s.labels.get("service")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    for service in ("idle", "busy"):
        assert samples[("wharf_replica_cpu_seconds_total", service)] > 0
        assert samples[("wharf_replica_resident_memory_bytes", service)] > 0
        assert samples[("wharf_revision_replica_seconds_total", service)] > 0
        assert ("wharf_revision_concurrency", service) in samples
        assert ("wharf_revision_concurrency_target", service) in samples
    assert samples[("wharf_revision_idle_replica_seconds_total", "idle")] > 0
    assert samples[("wharf_revision_concurrency_target", "busy")] == 0.7  # containerConcurrency 1 at 70%
