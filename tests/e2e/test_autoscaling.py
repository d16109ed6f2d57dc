"""Serverless autoscaling on `wharf up`: scale from zero on the first request, up under a load step, down to zero
when idle, with no request failing; 70 requests/s scaling on rps as Knative does; a restart that keeps a service
scaled to zero at zero."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.e2e.conftest import Daemon, manifest, ready, start_daemon

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


class PacedLoad:
    """`rate` requests a second to the `who` service, each sent at its due time by one of `workers` threads (so a
    slow answer does not slow the rate); every answer's status is kept."""

    def __init__(self, daemon: Daemon, rate: float, workers: int = 8) -> None:
        self._url = f"{daemon.gateway_url}/v2/models/who/infer"
        self._rate = rate
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.statuses: list[int] = []
        self.started = time.monotonic()
        self._threads = [threading.Thread(target=self._work) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        with httpx.Client(timeout=30, headers={"host": HOST}) as client:
            while not self._stop.is_set():
                with self._lock:
                    due = self.started + self._next / self._rate
                    self._next += 1
                self._stop.wait(max(0.0, due - time.monotonic()))
                if not self._stop.is_set():
                    self.statuses.append(client.post(self._url, json=BODY).status_code)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def _gauge(metrics: str, name: str, revision: str) -> float | None:
    prefix = f'{name}{{revision="{revision}"}} '
    return next((float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix)), None)


@pytest.mark.slow
def test_seventy_requests_a_second_panic_to_four_replicas_within_the_panic_window(daemon: Daemon) -> None:
    # Knative's defaults: stable window 60 s, panic window 6 s, target 20 x 70% utilisation = 14 requests/s a
    # replica. The panic window's mean climbs by 70/6 a second: ceil(46.7 / 14) = 4 on the 4th second of load,
    # ceil(70 / 14) = 5 from the 5th (tests/unit/autoscaler/test_knative_rps.py works it out tick by tick).
    bounds = {"minReplicas": 1, "maxReplicas": 8, "scaleMetric": "rps", "scaleTarget": 20}
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a", predictor=bounds))
    daemon.wait("who", lambda s: _replicas(s) == 1 and s["status"]["replicaStates"][0]["ready"])
    revision = "who-predictor-00001"
    load = PacedLoad(daemon, 70)
    seen: list[tuple[float, float, float]] = []  # (seconds into the load, desired replicas, panic)
    try:
        with daemon.control() as control:
            while time.monotonic() - load.started < 30:
                metrics = control.get("/metrics").text
                desired = _gauge(metrics, "wharf_revision_desired_replicas", revision) or 0.0
                seen.append(
                    (time.monotonic() - load.started, desired, _gauge(metrics, "wharf_revision_panic", revision) or 0.0)
                )
                if desired >= 4 and (_gauge(metrics, "wharf_revision_ready_replicas", revision) or 0) >= 4:
                    break
                time.sleep(0.2)
    finally:
        load.stop()
    reached = next((at, panic) for at, desired, panic in seen if desired >= 4)
    # Within the panic window, give or take the daemon's 1 s resync on a busy machine.
    assert reached[0] <= 6 + 2, seen
    assert reached[1] == 1.0  # it got there panicking
    assert max(desired for _, desired, _ in seen) <= 6  # ceil(70 / 14) = 5, one more for a second of jitter
    assert set(load.statuses) == {200} and len(load.statuses) >= 70 * reached[0] * 0.8


@pytest.mark.slow
def test_a_restarted_daemon_keeps_a_service_scaled_to_zero_at_zero(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a", predictor={"minReplicas": 0}, annotations=FAST_WINDOW))
    daemon.wait("who", lambda s: _replicas(s) == 1)  # a new revision's initial scale
    daemon.wait("who", lambda s: _replicas(s) == 0, timeout=40)  # no requests: the stable window and the grace
    daemon.stop()

    again = start_daemon(daemon.home)
    try:
        for _ in range(4):  # (was: one replica at once, the initial scale of a revision seen as new)
            service = again.isvc("who")
            assert _replicas(service) == 0 and ready(service), service["status"]
            time.sleep(0.5)
        answer = httpx.post(f"{again.gateway_url}/v2/models/who/infer", json=BODY, headers={"host": HOST}, timeout=30)
        assert answer.status_code == 200  # demand brings a replica, as before the restart
        assert _replicas(again.isvc("who")) == 1
    finally:
        again.stop()
