"""Serverless autoscaling on `wharf up`: scale from zero on the first request, up under a load step, down to zero
when idle, with no request failing."""

from __future__ import annotations

import threading
import time

import httpx

from tests.e2e.conftest import Daemon, manifest, ready

HOST = "who.default.example.com"
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
FAST_WINDOW = {"autoscaling.knative.dev/window": "6s"}  # Knative's shortest stable window


def _replicas(service: dict) -> int:
    return service["status"]["replicas"]


def _ask(daemon: Daemon, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{daemon.gateway_url}/v2/models/who/infer", json=BODY, headers={"host": HOST}, timeout=timeout)


def test_idle_scales_to_zero_and_the_next_request_brings_a_replica_back(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a", predictor={"minReplicas": 0}, annotations=FAST_WINDOW))
    daemon.wait("who", lambda s: _replicas(s) >= 1)
    assert _ask(daemon).status_code == 200
    idle = daemon.wait("who", lambda s: _replicas(s) == 0, timeout=40)  # a stable window and the grace period
    assert ready(idle)

    started = time.monotonic()
    answers = []
    workers = [threading.Thread(target=lambda: answers.append(_ask(daemon))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(40)
    assert [a.status_code for a in answers] == [200, 200, 200]  # held by the activator, none lost
    assert time.monotonic() - started < 20
    assert _replicas(daemon.isvc("who")) >= 1
    metrics = daemon.control().get("/metrics").text
    cold_starts = [line for line in metrics.splitlines() if line.startswith("wharf_cold_start_seconds_count")]
    assert cold_starts and float(cold_starts[0].split()[-1]) >= 1  # timed from the first waiting request
    assert 'wharf_revision_desired_replicas{revision="who-predictor-00001"}' in metrics


def test_a_load_step_scales_up_and_idle_scales_back_down(daemon: Daemon) -> None:
    bounds = {"minReplicas": 1, "maxReplicas": 3, "scaleTarget": 2}
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a", predictor=bounds, annotations=FAST_WINDOW, sleep_s=0.2))
    daemon.wait("who", lambda s: _replicas(s) == 1 and s["status"]["replicaStates"][0]["ready"])
    failures: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=daemon.gateway_url, timeout=30, headers={"host": HOST}) as client:
            while not stop.is_set():
                status = client.post("/v2/models/who/infer", json=BODY).status_code
                if status != 200:
                    failures.append(status)

    clients = [threading.Thread(target=load) for _ in range(6)]  # 6 in flight against a target of 2 per replica
    for client in clients:
        client.start()
    try:
        daemon.wait("who", lambda s: sum(r["ready"] for r in s["status"]["replicaStates"]) == 3, timeout=30)
    finally:
        stop.set()
        for client in clients:
            client.join(30)
    assert failures == []
    daemon.wait("who", lambda s: _replicas(s) == 1, timeout=40)
