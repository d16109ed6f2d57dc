"""The daemon and its replicas under failure and load: a replica killed under load costs at most its requests in
flight (none, as those it dropped go to another replica), requests wait for a crashed only replica to restart, a
burst scales from zero without a failure, a restarted daemon loses nothing."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import Daemon, manifest, ready, start_daemon, who_answers
from tests.e2e.test_autoscaling import BODY, FAST_WINDOW
from tests.e2e.test_transformers import infer, scaled
from wharf.control.store import Store

HOST = "who.default.example.com"
CLIENTS = 8  # concurrent clients of the load tests
BURST = 200  # concurrent requests for a service scaled to zero


def _ready_replicas(service: dict) -> list[dict]:
    return [r for r in service["status"].get("replicaStates", []) if r["ready"]]


class Load:
    """`clients` threads asking the service for as long as the `with` block lasts: the answers that were not 200
    (status and body), and how many were."""

    def __init__(self, daemon: Daemon, clients: int) -> None:
        self.daemon = daemon
        self.failures: list[str] = []
        self.answered = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._ask) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(40)

    def _ask(self) -> None:
        with httpx.Client(base_url=self.daemon.gateway_url, timeout=30, headers={"host": HOST}) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post("/v2/models/who/infer", json=BODY)
                except httpx.HTTPError as e:
                    self.failures.append(repr(e))
                    continue
                if answer.status_code == 200:
                    self.answered += 1
                else:
                    self.failures.append(f"{answer.status_code} {answer.text}")

    def until(self, answered: int, timeout: float = 20.0) -> None:
        """Until `answered` more requests were answered 200."""
        goal = self.answered + answered
        deadline = time.monotonic() + timeout
        while self.answered < goal:
            assert time.monotonic() < deadline, f"only {self.answered} answered; failures {self.failures}"
            time.sleep(0.05)


def _replaced(victim: dict, count: int) -> Callable[[dict], bool]:
    """Whether a service has `count` ready replicas again, none of them the process `victim` was."""
    return lambda s: len(_ready_replicas(s)) == count and victim["pid"] not in {r["pid"] for r in _ready_replicas(s)}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_replica_killed_under_load_fails_no_more_than_its_requests_in_flight(daemon: Daemon) -> None:
    two = manifest("who", "a", predictor={"minReplicas": 2, "maxReplicas": 2}, sleep_s=0.02)
    daemon.wharf("apply", "-f", "-", stdin=two)
    service = daemon.wait("who", lambda s: len(_ready_replicas(s)) == 2)
    with Load(daemon, CLIENTS) as load:
        load.until(50)  # steady: each replica has requests in flight
        victim = _ready_replicas(service)[0]
        os.kill(victim["pid"], signal.SIGKILL)
        replaced = daemon.wait("who", _replaced(victim, 2))
        load.until(50)  # and it goes on
    # At most the requests the killed replica was serving; those it dropped unanswered go to the other replica.
    assert len(load.failures) <= CLIENTS, load.failures
    assert load.failures == [], load.failures
    assert any(r["restarts"] == 1 for r in replaced["status"]["replicaStates"])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_requests_wait_for_a_crashed_only_replica_to_restart_instead_of_failing(daemon: Daemon) -> None:
    one = manifest("who", "a", predictor={"minReplicas": 1, "maxReplicas": 1}, sleep_s=0.02)
    daemon.wharf("apply", "-f", "-", stdin=one)
    service = daemon.wait("who", lambda s: len(_ready_replicas(s)) == 1)
    with Load(daemon, 4) as load:
        load.until(20)
        [victim] = _ready_replicas(service)
        os.kill(victim["pid"], signal.SIGKILL)
        restarted = daemon.wait("who", _replaced(victim, 1))
        load.until(20)
    # Held in the activator while the replica restarted, as when scaling from zero: no burst of 503s.
    assert load.failures == [], load.failures
    [state] = restarted["status"]["replicaStates"]
    assert state["restarts"] == 1 and state["last_exit"] == -signal.SIGKILL and state["backoff_s"] == 0


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_burst_of_200_requests_scales_from_zero_without_a_failure(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a", predictor={"minReplicas": 0}, annotations=FAST_WINDOW))
    daemon.wait("who", lambda s: len(_ready_replicas(s)) == 1)
    daemon.wait("who", lambda s: s["status"]["replicas"] == 0, timeout=60)  # idle: a stable window and the grace

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(base_url=daemon.gateway_url, timeout=60, limits=limits) as client:
            asks = [client.post("/v2/models/who/infer", json=BODY, headers={"host": HOST}) for _ in range(BURST)]
            return [answer.status_code for answer in await asyncio.gather(*asks)]

    statuses = asyncio.run(burst())
    assert statuses == [200] * BURST, collections.Counter(statuses)


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
    # Restarted at once after its first failure, then backing off (10 s, doubling) instead of keeping a core busy.
    service = daemon.wait("broken", lambda s: s["status"]["replicaStates"][0]["backoff_s"] == 10)
    condition = next(c for c in service["status"]["conditions"] if c["type"] == "PredictorReady")
    assert condition["message"].startswith("CrashLoopBackOff: back-off 10 s restarting replica broken-predictor-00001")
    assert "weights missing" in condition["message"]


def test_two_daemons_refuse_to_share_a_home(daemon: Daemon) -> None:
    try:
        start_daemon(daemon.home)
    except RuntimeError as e:
        assert "another `wharf up` is running" in str(e)
    else:
        raise AssertionError("a second wharf up started on the same WHARF_HOME")
