"""The daemon and its replicas under failure: a killed replica is replaced, a restarted daemon loses nothing."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx

from tests.e2e.conftest import Daemon, manifest, ready, start_daemon, who_answers
from tests.e2e.test_transformers import infer, scaled
from wharf.control.store import Store

HOST = "who.default.example.com"


def _ready_replicas(service: dict) -> list[dict]:
    return [r for r in service["status"].get("replicaStates", []) if r["ready"]]


def test_a_killed_replica_is_replaced_without_failing_other_requests(daemon: Daemon) -> None:
    two = manifest("who", "a", predictor={"minReplicas": 2})
    daemon.wharf("apply", "-f", "-", stdin=two)
    service = daemon.wait("who", lambda s: len(_ready_replicas(s)) == 2)
    failures: list[int] = []
    stop = threading.Event()

    def load() -> None:
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
        with httpx.Client(base_url=daemon.gateway_url, timeout=10, headers={"host": HOST}) as client:
            while not stop.is_set():
                status = client.post("/v2/models/who/infer", json=body).status_code
                if status != 200:
                    failures.append(status)

    worker = threading.Thread(target=load)
    worker.start()
    time.sleep(0.5)
    victim = _ready_replicas(service)[0]
    os.kill(victim["pid"], signal.SIGKILL)
    replaced = daemon.wait(
        "who", lambda s: len(_ready_replicas(s)) == 2 and victim["pid"] not in {r["pid"] for r in _ready_replicas(s)}
    )
    stop.set()
    worker.join(10)
    assert len(failures) <= 1, failures  # at most the one request the killed replica was serving
    assert any(r["restarts"] >= 1 for r in replaced["status"]["replicaStates"])


def _recorded_replicas(daemon: Daemon) -> dict:
    store = Store(daemon.home / "wharf.db")
    try:
        return store.replicas()
    finally:
        store.close()


def _wait_recorded_ready(daemon: Daemon, count: int) -> None:
    """Until a resync has recorded `count` replicas as ready (an earlier record may lack their ports)."""
    deadline = time.monotonic() + 30
    while [record["ready"] for _, record in _recorded_replicas(daemon).values()] != [True] * count:
        assert time.monotonic() < deadline, "the ready replicas were never recorded"
        time.sleep(0.1)


def test_a_restarted_daemon_adopts_running_replicas(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    before = daemon.wait("who", lambda s: len(_ready_replicas(s)) == 1)
    _wait_recorded_ready(daemon, 1)  # a resync records the replica for adoption
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL  # a crash: the replica keeps running
    again = start_daemon(daemon.home)
    try:
        after = again.wait("who", lambda s: len(_ready_replicas(s)) == 1)
        assert _ready_replicas(after)[0]["pid"] == _ready_replicas(before)[0]["pid"]
        assert after["status"]["components"] == before["status"]["components"]
        assert set(who_answers(again, HOST, 5)) == {"a"}
    finally:
        assert again.stop() == 0


def test_a_daemon_restarted_on_the_same_gateway_ports_adopts_a_transformer(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=1))
    before = {r["revision"]: r["pid"] for r in _ready_replicas(daemon.wait("scaled", ready))}
    _wait_recorded_ready(daemon, 2)
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    # The transformer's environment names the gateway's ports: a daemon on others would restart it.
    again = start_daemon(daemon.home, (daemon.http_port, daemon.grpc_port))
    try:
        after = again.wait("scaled", ready)
        assert {r["revision"]: r["pid"] for r in _ready_replicas(after)} == before
        assert all(r["restarts"] == 0 for r in after["status"]["replicaStates"])
        answer = infer(again, "scaled.default.example.com", [1.0, 2.0])
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
        assert outputs == {"y": [4.0, 7.0], "pid": [before["scaled-transformer-00001"]] * 2}
    finally:
        assert again.stop() == 0


def test_requests_for_a_revision_whose_replicas_keep_failing_fail_at_once_with_the_reason(daemon: Daemon) -> None:
    broken = manifest("broken", "a").replace("wharf_test_models:WhoAmI", "wharf_test_models:FailsToLoad")
    daemon.wharf("apply", "-f", "-", stdin=broken)
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    with httpx.Client(base_url=daemon.gateway_url, timeout=90, headers={"host": "broken.default.example.com"}) as c:
        started = time.monotonic()
        first = c.post("/v2/models/broken/infer", json=body)  # waits until the replica has failed twice
        assert time.monotonic() - started < 30, "the waiting request was not failed when the replica kept failing"
        started = time.monotonic()
        second = c.post("/v2/models/broken/infer", json=body)
        assert time.monotonic() - started < 1
    for answer in (first, second):
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
        error = answer.json()["error"]
        assert "its replicas keep failing to start" in error and "weights missing" in error, error


def test_two_daemons_refuse_to_share_a_home(daemon: Daemon) -> None:
    try:
        start_daemon(daemon.home)
    except RuntimeError as e:
        assert "another `wharf up` is running" in str(e)
    else:
        raise AssertionError("a second wharf up started on the same WHARF_HOME")
