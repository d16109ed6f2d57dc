"""The gateway in front of real `wharf serve` replicas, over real HTTP and gRPC.

Five replicas start once for the module: two iris servers (revisions `iris-a` and `iris-b`), an Echo model
served under the name `iris` (revision `iris-echo`, whose answers give it away), the Slow model and a spare
iris server that one test kills. The gateway runs in-process, in an event loop on a background thread, and each
test hands it the route table it needs. Which replica answered is read from the replicas' own /metrics. The
activator's tests start a gateway of their own, and one a replica of its own while requests wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton
import uvloop
from tritonclient.utils import InferenceServerException

from wharf.gateway import Gateway, GatewaySettings, Replica, Revision, RevisionStats, RouteTable, Service

from .conftest import RunningServer, launch, post_without_body

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

T = TypeVar("T")
FLOWER = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}
IRIS = "iris.default.example.com"


@dataclass
class Fleet:
    iris_a: RunningServer
    iris_b: RunningServer
    echo: RunningServer
    slow: RunningServer
    spare: RunningServer


@pytest.fixture(scope="module")
def fleet(iris_model: Path) -> Iterator[Fleet]:
    iris = (str(iris_model), "--name", "iris")
    commands = [
        (iris, None),
        (iris, None),
        (("wharf_test_models:Echo", "--name", "iris"), None),
        (("wharf_test_models:Slow", "--name", "slow"), {"WHARF_PREDICT_THREADS": "4"}),
        (iris, None),
    ]
    with ThreadPoolExecutor(len(commands)) as pool:
        started = [pool.submit(launch, *args, env=env) for args, env in commands]
    servers = [f.result() for f in started if f.exception() is None]
    try:
        if len(servers) < len(commands):
            raise next(f.exception() for f in started if f.exception() is not None)  # type: ignore[misc]
        yield Fleet(*servers)
    finally:
        for server in servers:
            server.stop()


class RunningGateway:
    """A `Gateway` started in its own event loop on a background thread; `demands` lists its on_demand calls."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.demands: list[str] = []
        self.gateway = Gateway(settings, on_demand=self.demands.append)
        self.http_port, self.grpc_port = self.run(self.gateway.start("127.0.0.1", 0, 0))

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def update(self, table: RouteTable) -> None:
        async def update() -> None:
            self.gateway.update(table)

        self.run(update())

    def stats(self) -> dict[str, RevisionStats]:
        async def stats() -> dict[str, RevisionStats]:
            return self.gateway.stats()

        return self.run(stats())

    def stop(self) -> None:
        try:
            self.run(self.gateway.stop(2.0))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    running = RunningGateway(GatewaySettings(max_queued_per_revision=1))
    yield running
    running.stop()


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10) as c:
        yield c


def replica(server: RunningServer, id: str, ready: bool = True) -> Replica:
    return Replica(id, server.url, f"127.0.0.1:{server.grpc_port}", ready)


def revision(name: str, *replicas: Replica, timeout_s: float = 10.0, container_concurrency: int = 0) -> Revision:
    return Revision(name, replicas, timeout_s, container_concurrency)


def iris_service(fleet: Fleet, traffic: tuple[tuple[str, int], ...], shadow: tuple[str, int] | None = None) -> Service:
    revisions = [
        revision("iris-a", replica(fleet.iris_a, "a")),
        revision("iris-b", replica(fleet.iris_b, "b")),
        revision("iris-echo", replica(fleet.echo, "echo")),
    ]
    tags = {"latest": "iris-b", "prev": "iris-a", "echo": "iris-echo"}
    return Service("default", "iris", "iris", traffic, tags, {r.name: r for r in revisions}, shadow)


def slow_service(fleet: Fleet, timeout_s: float = 0.5, container_concurrency: int = 0) -> Service:
    slow = replica(fleet.slow, "slow")
    rev = revision("slow-1", slow, timeout_s=timeout_s, container_concurrency=container_concurrency)
    return Service("test", "slow", "slow", (("slow-1", 100),), {}, {"slow-1": rev})


def cold_service(timeout_s: float = 0.5) -> Service:
    """A service whose one replica never gets ready: its requests wait `timeout_s` in the activator, then fail."""
    rev = revision("cold-1", Replica("cold-0", "http://127.0.0.1:9", "127.0.0.1:9", ready=False), timeout_s=timeout_s)
    return Service("default", "cold", "cold", (("cold-1", 100),), {}, {"cold-1": rev})


@pytest.fixture
def routes(gateway: RunningGateway, fleet: Fleet) -> RouteTable:
    """The table most tests use: iris split 70/30 between iris-a and iris-b, slow, and a cold service."""
    table = RouteTable((iris_service(fleet, (("iris-a", 70), ("iris-b", 30))), slow_service(fleet), cold_service()))
    gateway.update(table)
    return table


def served(server: RunningServer, model: str = "iris") -> int:
    """How many inference requests `server` has answered for `model` (its wharf_requests_total)."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    pattern = rf'^wharf_requests_total\{{[^}}]*model="{model}"[^}}]*\}} ([0-9.e+]+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, re.M)))


def output_names(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [o["name"] for o in answer.json()["outputs"]]


def infer(
    client: httpx.Client, host: str = IRIS, path: str = "/v2/models/iris/infer", **headers: str
) -> httpx.Response:
    return client.post(path, json=FLOWER, headers={"host": host, **headers})


def slow_request(seconds: float) -> dict[str, Any]:
    return {"inputs": [{"name": "seconds", "shape": [1], "datatype": "FP64", "data": [seconds]}]}


# --- HTTP ---------------------------------------------------------------------------------------------------
def test_host_path_and_pinned_revision_reach_the_right_replica(
    client: httpx.Client, fleet: Fleet, routes: RouteTable
) -> None:
    assert output_names(infer(client, **{"x-wharf-revision": "iris-echo"})) == ["input-0"]
    before = served(fleet.iris_a)
    assert output_names(infer(client, **{"x-wharf-revision": "iris-a"})) == ["predict"]
    assert served(fleet.iris_a) == before + 1

    answer = client.post("/serving/test/slow/v2/models/slow/infer", json=slow_request(0))
    assert output_names(answer) == ["slept"]
    assert client.get("/serving/default/iris/v2/models/iris/ready").status_code == 200
    assert client.get("/v2/models/slow", headers={"host": "slow.test.example.com:8080"}).json()["name"] == "slow"


def test_tag_routes(client: httpx.Client, fleet: Fleet, routes: RouteTable) -> None:
    a, b = served(fleet.iris_a), served(fleet.iris_b)
    assert output_names(infer(client, host="latest-iris.default.example.com")) == ["predict"]
    assert output_names(infer(client, host="prev-iris.default.example.com")) == ["predict"]
    assert (served(fleet.iris_a), served(fleet.iris_b)) == (a + 1, b + 1)
    assert output_names(infer(client, host="echo-iris.default.example.com")) == ["input-0"]


def test_traffic_splits_70_30(client: httpx.Client, gateway: RunningGateway, fleet: Fleet, routes: RouteTable) -> None:
    a, b = served(fleet.iris_a), served(fleet.iris_b)
    before = gateway.stats()
    for _ in range(400):
        assert infer(client).status_code == 200
    to_a, to_b = served(fleet.iris_a) - a, served(fleet.iris_b) - b
    assert to_a + to_b == 400
    assert abs(to_a - 280) <= 45, (to_a, to_b)  # about 5 standard deviations of a binomial(400, 0.7)
    stats = gateway.stats()
    assert stats["iris-a"].requests - before["iris-a"].requests == to_a
    assert stats["iris-b"].requests - before["iris-b"].requests == to_b
    assert stats["iris-a"].errors == 0 and stats["iris-a"].p50_ms is not None


def test_shadow_traffic_reaches_the_shadow_without_changing_answers(
    client: httpx.Client, gateway: RunningGateway, fleet: Fleet
) -> None:
    gateway.update(RouteTable((iris_service(fleet, (("iris-echo", 100),), shadow=("iris-b", 100)),)))
    b = served(fleet.iris_b)
    mirrored_before = gateway.stats()["iris-b"].requests
    for _ in range(40):
        assert output_names(infer(client)) == ["input-0"]  # answered by the primary, the echo
    deadline = time.monotonic() + 5
    while served(fleet.iris_b) < b + 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served(fleet.iris_b) == b + 40
    assert gateway.stats()["iris-b"].requests - mirrored_before == 40


def test_no_route_unknown_revision_and_no_ready_replica(client: httpx.Client, routes: RouteTable) -> None:
    answer = infer(client, host="nothing.default.example.com")
    assert answer.status_code == 404
    assert "no InferenceService for host 'nothing.default.example.com'" in answer.json()["error"]
    answer = infer(client, **{"x-wharf-revision": "iris-9"})
    assert answer.status_code == 404
    assert answer.json() == {"error": "InferenceService 'default/iris' has no revision 'iris-9'"}
    answer = infer(client, host="cold.default.example.com", path="/v2/models/cold/infer")
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")
    assert answer.json() == {"error": "revision 'cold-1' has no ready replica: none became ready within 0.5 s"}


def test_replica_errors_pass_through(client: httpx.Client, routes: RouteTable) -> None:
    answer = client.post("/v2/models/iris/infer", content=b"{not json", headers={"host": IRIS})
    assert answer.status_code == 400 and "error" in answer.json()
    answer = client.get("/v2/models/nope", headers={"host": IRIS})
    assert answer.status_code == 404 and "nope" in answer.json()["error"]


def test_a_slow_replica_times_out_with_504(client: httpx.Client, routes: RouteTable) -> None:
    started = time.monotonic()
    answer = client.post("/serving/test/slow/v2/models/slow/infer", json=slow_request(1.0))
    assert time.monotonic() - started < 0.9
    assert answer.status_code == 504
    assert answer.json() == {"error": "revision 'slow-1' did not answer within 0.5 s"}


def test_container_concurrency_queues_then_refuses(client: httpx.Client, gateway: RunningGateway, fleet: Fleet) -> None:
    gateway.update(RouteTable((slow_service(fleet, timeout_s=5.0, container_concurrency=1),)))

    def call(delay: float) -> tuple[int, float]:
        time.sleep(delay)
        started = time.monotonic()
        answer = client.post("/serving/test/slow/v2/models/slow/infer", json=slow_request(0.4))
        return answer.status_code, time.monotonic() - started

    with ThreadPoolExecutor(3) as pool:  # one runs, one waits in the queue (max 1), one is refused at once
        results = list(pool.map(call, [0, 0.1, 0.2]))
    assert [status for status, _ in results] == [200, 200, 503]
    assert results[1][1] > 0.5  # it waited for the first
    assert results[2][1] < 0.3


def test_request_body_limit(fleet: Fleet) -> None:
    small = RunningGateway(GatewaySettings(max_request_bytes=1024))
    try:
        small.update(RouteTable((iris_service(fleet, (("iris-a", 100),)),)))
        with httpx.Client(base_url=f"http://127.0.0.1:{small.http_port}", timeout=10) as client:
            answer = client.post("/v2/models/iris/infer", content=b" " * 2048, headers={"host": IRIS})
            assert answer.status_code == 413
            assert infer(client).status_code == 200
    finally:
        small.stop()


def test_a_body_that_never_comes_is_answered_within_the_body_timeout() -> None:
    running = RunningGateway(GatewaySettings(body_timeout_s=0.5))
    try:
        running.update(RouteTable((cold_service(),)))  # a request is routed before its body is read
        head, body, seconds = post_without_body(running.http_port, "cold.default.example.com", "/v2/models/cold/infer")
        assert seconds < 3
        assert head.startswith(b"HTTP/1.1 400 ") and b"content-type: application/json" in head.lower()
        assert orjson.loads(body) == {"error": "request body not received within 0.5 s"}
    finally:
        running.stop()


def test_a_websocket_upgrade_is_answered_as_plain_http(
    client: httpx.Client, routes: RouteTable, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13"}
    upgrade["sec-websocket-key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    with caplog.at_level(logging.WARNING):
        answer = client.get("/", headers={"host": "nothing.default.example.com", **upgrade})
    assert answer.status_code == 404
    assert "no InferenceService for host 'nothing.default.example.com'" in answer.json()["error"]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]  # no advice to install one


# --- activator ----------------------------------------------------------------------------------------------
def concurrently(gateway: RunningGateway, host: str, model: str, requests: int) -> list[Future[httpx.Response]]:
    """Start `requests` inference requests at once, each from its own thread and client (timeout 20 s)."""

    def request() -> httpx.Response:
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=20) as client:
            return infer(client, host=host, path=f"/v2/models/{model}/infer")

    pool = ThreadPoolExecutor(requests)
    answers = [pool.submit(request) for _ in range(requests)]
    pool.shutdown(wait=False)
    return answers


def wait_until_queued(gateway: RunningGateway, name: str, requests: int) -> None:
    deadline = time.monotonic() + 10
    while gateway.stats()[name].queued < requests:
        assert time.monotonic() < deadline, gateway.stats()[name]
        time.sleep(0.05)


def test_requests_wait_for_a_revision_to_scale_up_from_zero(iris_model: Path) -> None:
    running = RunningGateway(GatewaySettings())

    def routes(*replicas: Replica) -> RouteTable:
        rev = revision("wake-1", *replicas, timeout_s=30.0)
        return RouteTable((Service("default", "wake", "iris", (("wake-1", 100),), {}, {"wake-1": rev}),))

    try:
        running.update(routes())  # scaled to zero: no replica at all
        answers = concurrently(running, "wake.default.example.com", "iris", 5)
        wait_until_queued(running, "wake-1", 5)
        assert running.demands == ["wake-1"]  # once for the five
        assert not any(answer.done() for answer in answers)
        server = launch(str(iris_model), "--name", "iris")
        try:
            assert not any(answer.done() for answer in answers)
            running.update(routes(replica(server, "wake-0")))
            assert [output_names(answer.result(20)) for answer in answers] == [["predict"]] * 5
            assert served(server) == 5
        finally:
            server.stop()
        stats = running.stats()["wake-1"]
        assert (stats.queued, stats.in_flight, stats.requests, stats.errors) == (0, 0, 5, 0)
        assert running.demands == ["wake-1"]
    finally:
        running.stop()


def test_no_replica_in_time_answers_503_with_retry_after() -> None:
    running = RunningGateway(GatewaySettings(activator_timeout_s=1.0, activator_retry_after_s=2))
    try:
        running.update(RouteTable((cold_service(timeout_s=10.0),)))  # the activator's 1 s is shorter
        started = time.monotonic()
        waiting = concurrently(running, "cold.default.example.com", "cold", 3)
        wait_until_queued(running, "cold-1", 3)
        answers = [answer.result(20) for answer in waiting]
        assert 0.9 < time.monotonic() - started < 5
        for answer in answers:
            assert (answer.status_code, answer.headers["retry-after"]) == (503, "2")
            assert answer.json() == {"error": "revision 'cold-1' has no ready replica: none became ready within 1 s"}
        assert running.demands == ["cold-1"]
        assert running.stats()["cold-1"].queued == 0
    finally:
        running.stop()


# --- gRPC ---------------------------------------------------------------------------------------------------
@pytest.fixture
def grpc_client(gateway: RunningGateway) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(f"127.0.0.1:{gateway.grpc_port}")
    yield client
    client.close()


def grpc_flower() -> list[triton.InferInput]:
    tensor = triton.InferInput("input-0", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))
    return [tensor]


def grpc_seconds(seconds: float) -> list[triton.InferInput]:
    tensor = triton.InferInput("seconds", [1], "FP64")
    tensor.set_data_from_numpy(np.array([seconds], dtype=np.float64))
    return [tensor]


def grpc_status(call: Any) -> str:
    with pytest.raises(InferenceServerException) as raised:
        call()
    return str(raised.value.status())


def test_grpc_routes_by_model_name_or_service_metadata(
    grpc_client: triton.InferenceServerClient, gateway: RunningGateway, fleet: Fleet, routes: RouteTable
) -> None:
    answer = grpc_client.infer("slow", grpc_seconds(0))
    assert answer.as_numpy("slept").tolist() == [0.0]
    assert grpc_client.is_model_ready("slow")
    assert grpc_client.get_model_metadata("iris").name == "iris"

    pinned = {"x-wharf-service": "default/iris", "x-wharf-revision": "iris-echo"}
    echoed = grpc_client.infer("iris", grpc_flower(), headers=pinned)
    assert echoed.as_numpy("input-0").shape == (1, 4)  # the Echo replica answered
    before = served(fleet.iris_b)
    grpc_client.infer("iris", grpc_flower(), headers={"x-wharf-revision": "iris-b"})
    assert served(fleet.iris_b) == before + 1
    assert grpc_client.is_server_live(headers={"x-wharf-service": "test/slow"})
    assert gateway.stats()["slow-1"].requests >= 2


def test_grpc_statuses(grpc_client: triton.InferenceServerClient, routes: RouteTable) -> None:
    assert grpc_status(lambda: grpc_client.infer("nope", grpc_flower())) == "StatusCode.NOT_FOUND"
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()  # no service named: the gateway's own
    assert grpc_client.get_server_metadata().name == "wharf-gateway"
    assert grpc_status(lambda: grpc_client.is_server_live(headers={"x-wharf-service": "x/nope"})) == (
        "StatusCode.NOT_FOUND"
    )
    assert grpc_status(lambda: grpc_client.infer("cold", grpc_flower())) == "StatusCode.UNAVAILABLE"
    # The replica's own status passes through: the iris model expects 4 features.
    wrong = triton.InferInput("input-0", [1, 3], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    assert grpc_status(lambda: grpc_client.infer("iris", [wrong])) == "StatusCode.INVALID_ARGUMENT"
    # The client's deadline travels with the request; the revision's timeout (0.5 s) applies too.
    assert grpc_status(lambda: grpc_client.infer("slow", grpc_seconds(1.0), client_timeout=0.2)) == (
        "StatusCode.DEADLINE_EXCEEDED"
    )
    assert grpc_status(lambda: grpc_client.infer("slow", grpc_seconds(1.0))) == "StatusCode.DEADLINE_EXCEEDED"


# --- failure ------------------------------------------------------------------------------------------------
def test_a_killed_replica_costs_only_the_requests_in_flight(gateway: RunningGateway, fleet: Fleet) -> None:
    both = revision("spare-1", replica(fleet.spare, "spare"), replica(fleet.iris_a, "a"))
    gateway.update(RouteTable((Service("default", "spare", "iris", (("spare-1", 100),), {}, {"spare-1": both}),)))
    host = "spare.default.example.com"
    stop = threading.Event()
    clients = 4

    def hammer() -> tuple[int, int]:
        ok = failed = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10) as client:
            while not stop.is_set():
                if infer(client, host=host).status_code == 200:
                    ok += 1
                else:
                    failed += 1
        return ok, failed

    with ThreadPoolExecutor(clients) as pool:
        running = [pool.submit(hammer) for _ in range(clients)]
        time.sleep(0.5)
        assert served(fleet.spare) > 0
        fleet.spare.proc.kill()
        fleet.spare.proc.wait(5)
        time.sleep(1.0)
        stop.set()
        results = [r.result(10) for r in running]
    assert sum(failed for _, failed in results) <= clients, results
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.http_port}", timeout=10) as client:
        assert all(infer(client, host=host).status_code == 200 for _ in range(20))
