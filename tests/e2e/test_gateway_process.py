"""The gateway runs apart from the control plane: traffic goes on while `wharf up` is killed and restarted, and a
killed gateway is started again on its ports with the routes it had."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.e2e.conftest import Daemon, manifest, ready, start_daemon, who_answers
from wharf.control.store import Store

HOST = "who.default.example.com"
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}


def _gateway_pid(daemon: Daemon) -> int:
    found = subprocess.run(["pgrep", "-f", "wharf.cli gateway"], capture_output=True, text=True).stdout.split()
    pids = [int(pid) for pid in found if str(daemon.home) in open(f"/proc/{pid}/environ", "rb").read().decode()]
    assert len(pids) == 1, pids
    return pids[0]


def _wait_replicas_recorded(daemon: Daemon) -> None:
    """Until a resync has recorded a ready replica, which a restarted daemon adopts."""
    deadline = time.monotonic() + 30
    while True:
        store = Store(daemon.home / "wharf.db")
        try:
            if any(record["ready"] for _, record in store.replicas().values()):
                return
        finally:
            store.close()
        assert time.monotonic() < deadline, "no ready replica was recorded"
        time.sleep(0.1)


@contextmanager
def _load(daemon: Daemon, clients: int = 4) -> Iterator[tuple[list[int], list[int]]]:
    """Requests to the `who` service from `clients` threads while the block runs: (answers, failures)."""
    answers: list[int] = []
    failures: list[int] = []
    stop = threading.Event()

    def one_client() -> None:
        with httpx.Client(base_url=daemon.gateway_url, timeout=10, headers={"host": HOST}) as client:
            while not stop.is_set():
                try:
                    status = client.post("/v2/models/who/infer", json=BODY).status_code
                except httpx.HTTPError:
                    status = -1
                (answers if status == 200 else failures).append(status)

    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield answers, failures
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)


def test_traffic_goes_on_while_the_daemon_is_killed_and_restarted(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    daemon.wait("who", ready)
    _wait_replicas_recorded(daemon)
    gateway = _gateway_pid(daemon)
    with _load(daemon) as (answers, failures):
        time.sleep(0.5)
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        served_before = len(answers)
        time.sleep(2.0)  # no control plane at all
        assert len(answers) > served_before, "the gateway stopped serving with its daemon"
        again = start_daemon(daemon.home, (daemon.http_port, daemon.grpc_port))
        time.sleep(1.0)
    try:
        assert failures == [], failures
        assert _gateway_pid(again) == gateway  # adopted, not restarted
        again.wharf("apply", "-f", "-", stdin=manifest("two", "b"))  # the new daemon drives the same gateway
        again.wait("two", ready)
        assert set(who_answers(again, "two.default.example.com", 3)) == {"b"}
        assert set(who_answers(again, HOST, 3)) == {"a"}
    finally:
        assert again.stop() == 0


def test_a_killed_gateway_starts_again_on_its_ports_with_its_routes(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a"))
    daemon.wait("who", ready)
    first = _gateway_pid(daemon)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        try:
            if who_answers(daemon, HOST, 1) == ["a"]:
                break
        except (httpx.HTTPError, AssertionError):
            pass
        assert time.monotonic() < deadline, "the gateway did not come back"
        time.sleep(0.2)
    assert _gateway_pid(daemon) != first


def test_the_daemon_stops_its_gateway(daemon: Daemon) -> None:
    pid = _gateway_pid(daemon)
    assert daemon.stop() == 0
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z":
        assert time.monotonic() < deadline, "the gateway outlived a daemon that stopped"
        time.sleep(0.1)
