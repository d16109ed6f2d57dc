"""Fixtures that run `wharf serve` as a real process on ephemeral 127.0.0.1 ports, or local backends that run
it as replicas (with the helpers their tests share)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np
import pytest

from tests.processes import ROOT, start
from wharf.control.backends import LocalBackend, LocalBackendSettings, ReplicaSpec, ReplicaState
from wharf.control.backends.process import is_replica_process

HELPERS = Path(__file__).resolve().parent / "models"
START_TIMEOUT_S = 60.0


@dataclass
class RunningServer:
    proc: subprocess.Popen
    http_port: int
    grpc_port: int | None
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def launch(*args: str, env: dict[str, str] | None = None, timeout: float = START_TIMEOUT_S) -> RunningServer:
    """Start `wharf serve ARGS` on free ports and wait for its "serving" log line."""
    command = [sys.executable, "-m", "wharf.cli", "serve", *args]
    if "--http-port" not in args:
        command += ["--http-port", "0"]
    if "--grpc-port" not in args:
        command += ["--grpc-port", "0"]
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HELPERS), os.environ.get("PYTHONPATH", "")])}
    full_env.update(env or {})
    proc, event, lines = start(command, full_env, "serving", timeout)
    return RunningServer(proc, event["http_port"], event.get("grpc_port"), lines)


def wait_until_in_flight(server: RunningServer, model: str, timeout: float = 30.0) -> None:
    """Return once the server's metrics show a request of `model` in flight."""
    sample = f'wharf_requests_in_flight{{model="{model}"}} 1.0'
    deadline = time.monotonic() + timeout
    while sample not in httpx.get(f"{server.url}/metrics", timeout=timeout).text:
        assert time.monotonic() < deadline, f"no request of '{model}' in flight"
        time.sleep(0.02)


@contextmanager
def served_client(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Iterator[httpx.Client]:
    """`launch(*args)` and yield an httpx client for it (with `timeout` per request); the server always stops."""
    server = launch(*args, env=env)
    try:
        with httpx.Client(base_url=server.url, timeout=timeout) as client:
            yield client
    finally:
        server.stop()


def outputs_of(answer: httpx.Response) -> dict[str, np.ndarray]:
    """The V2 outputs of a 200 answer by name, each as an array of its shape."""
    assert answer.status_code == 200, answer.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in answer.json()["outputs"]}


@pytest.fixture
def serve() -> Iterator[Callable[..., RunningServer]]:
    """Start servers with `serve(*args)`; each is stopped when the test ends."""
    started: list[RunningServer] = []

    def start(*args: str, env: dict[str, str] | None = None) -> RunningServer:
        server = launch(*args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def echo_server() -> Iterator[RunningServer]:
    """A server of the Echo test model (it answers with its inputs), shared by a test module."""
    server = launch("wharf_test_models:Echo", "--name", "echo")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The iris LogisticRegression, trained by the bundled example script."""
    path = tmp_path_factory.mktemp("iris") / "model.joblib"
    subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(path)], check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def iris_server(iris_model: Path) -> Iterator[RunningServer]:
    """One iris server shared by a test module, serving `iris_model`."""
    server = launch(str(iris_model), "--name", "iris")
    yield server
    server.stop()


def post_without_body(port: int, host: str, path: str) -> tuple[bytes, bytes, float]:
    """POST to 127.0.0.1:`port` a request that announces 10 bytes of body and never sends them; the answer's head,
    its body and how long it took to come."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n".encode()
            + b"content-length: 10\r\n\r\n"
        )
        reply = b""
        while b"}" not in reply and (chunk := sock.recv(65536)):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return head, body, time.monotonic() - started


# -- local backends and their replicas (the local backend's tests) ---------------------------------------------
FAST = LocalBackendSettings(
    start_timeout_s=30, health_interval_s=0.1, backoff_initial_s=0.2, backoff_max_s=2, kill_grace_s=2
)
ENV = {"PYTHONPATH": str(HELPERS), "WHARF_DRAIN_TIMEOUT_S": "10"}
T = TypeVar("T")
Backends = Callable[..., LocalBackend]


def spec_of(revision: str, model_uri: str, name: str) -> ReplicaSpec:
    return ReplicaSpec(revision, name, model_uri, None, ENV)


def alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # reaped here: the backend that started it was closed without stopping it
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def until(probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll `probe` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return value


def all_ready(backend: LocalBackend, revision: str, count: int) -> Callable[[], list[ReplicaState] | None]:
    def probe() -> list[ReplicaState] | None:
        states = backend.replicas(revision)
        return states if len(states) == count and all(s.ready for s in states) else None

    return probe


def url_of(state: ReplicaState, path: str) -> str:
    return f"http://127.0.0.1:{state.http_port}{path}"


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[Backends]:
    """Make backends with `backends(settings=..., on_change=...)`; every replica they ran is stopped at the end."""
    made: list[LocalBackend] = []
    pids: set[int] = set()

    def make(settings: LocalBackendSettings = FAST, on_change: Callable[[], None] | None = None) -> LocalBackend:
        def changed() -> None:
            pids.update(s.pid for s in backend.replicas() if s.pid)
            if on_change is not None:
                on_change()

        backend = LocalBackend(tmp_path / "home", settings, changed)
        made.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in made:
            await backend.close(stop_replicas=True)
        for pid in pids:
            if alive(pid) and is_replica_process(pid):
                os.killpg(pid, signal.SIGKILL)
