"""The gateway's own /metrics after real traffic: two services, one with a canary and a broken shadow, over REST
and gRPC, through an in-process `Gateway` in front of real `wharf serve` replicas of the WhoAmI test model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from prometheus_client.parser import text_string_to_metric_families

from wharf.gateway import GatewaySettings, RouteTable, Service

from .conftest import RunningServer, launch
from .test_gateway import RunningGateway, replica, revision

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

WHO = "who.default.example.com"
OTHER = "other.team.example.com"
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}


@pytest.fixture(scope="module")
def replicas() -> Iterator[dict[str, RunningServer]]:
    """WhoAmI servers: `a` and `b` (model `who`), `broken` (fails every request) and `c` (model `other`)."""
    wanted = {"a": "who", "b": "who", "broken": "who", "c": "other"}
    with ThreadPoolExecutor(len(wanted)) as pool:
        started = {
            who: pool.submit(launch, "wharf_test_models:WhoAmI", "--name", model, env={"WHO": who})
            for who, model in wanted.items()
        }
    servers = {who: f.result() for who, f in started.items() if f.exception() is None}
    try:
        if len(servers) < len(wanted):
            raise next(f.exception() for f in started.values() if f.exception() is not None)  # type: ignore[misc]
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def gateway(replicas: dict[str, RunningServer]) -> Iterator[RunningGateway]:
    running = RunningGateway(GatewaySettings())
    who = [revision("who-1", replica(replicas["a"], "a")), revision("who-2", replica(replicas["b"], "b"))]
    who.append(revision("who-3", replica(replicas["broken"], "broken")))
    other = revision("other-1", replica(replicas["c"], "c"))
    running.update(
        RouteTable(
            (
                Service(
                    "default",
                    "who",
                    "who",
                    (("who-1", 80), ("who-2", 20)),
                    {},
                    {r.name: r for r in who},
                    ("who-3", 100),
                ),
                Service("team", "other", "other", (("other-1", 100),), {}, {"other-1": other}),
            )
        )
    )
    yield running
    running.stop()


def scrape(gateway: RunningGateway) -> tuple[httpx.Response, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """The gateway's /metrics (a Host that names no service) and its samples: (name, labels) -> value."""
    answer = httpx.get(f"http://127.0.0.1:{gateway.http_port}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    return answer, samples


def requests(samples: dict, namespace: str, service: str, revision: str, traffic: str, code: str) -> float:
    labels = {"namespace": namespace, "service": service, "revision": revision, "traffic": traffic, "code": code}
    return samples.get(("wharf_gateway_requests_total", frozenset(labels.items())), 0.0)


def test_requests_by_service_revision_and_code_with_the_shadow_beside_the_live_revisions(
    gateway: RunningGateway,
) -> None:
    base = f"http://127.0.0.1:{gateway.http_port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(50):
            answer = client.post("/v2/models/who/infer", json=BODY, headers={"host": WHO})
            assert answer.status_code == 200, answer.text  # the broken shadow's answers never reach the client
        for _ in range(10):
            assert client.post("/v2/models/other/infer", json=BODY, headers={"host": OTHER}).status_code == 200
    grpc = triton.InferenceServerClient(f"127.0.0.1:{gateway.grpc_port}")
    try:
        tensor = triton.InferInput("x", [1], "FP32")
        tensor.set_data_from_numpy(np.array([1], dtype=np.float32))
        for _ in range(5):
            grpc.infer("who", [tensor], headers={"host": WHO})
    finally:
        grpc.close()

    deadline = time.monotonic() + 20
    while True:  # the shadow's copies are not awaited: wait until all were answered
        answer, samples = scrape(gateway)
        shadow = requests(samples, "default", "who", "who-3", "shadow", "500")
        shadow_grpc = requests(samples, "default", "who", "who-3", "shadow", "INTERNAL")
        if (shadow, shadow_grpc) == (50, 5):
            break
        assert time.monotonic() < deadline, f"the shadow answered {shadow} REST and {shadow_grpc} gRPC copies"
        time.sleep(0.1)

    assert answer.headers["content-type"].startswith("text/plain; version=")  # Prometheus text
    live = {rev: requests(samples, "default", "who", rev, "live", "200") for rev in ("who-1", "who-2")}
    assert sum(live.values()) == 50 and all(live.values()), live  # the canary's 20% among them
    assert sum(requests(samples, "default", "who", rev, "live", "OK") for rev in ("who-1", "who-2")) == 5
    assert requests(samples, "team", "other", "other-1", "live", "200") == 10
    assert requests(samples, "default", "who", "who-3", "live", "500") == 0  # the shadow takes no traffic itself

    def count(revision: str, traffic: str) -> float:
        labels = {"namespace": "default", "service": "who", "revision": revision, "traffic": traffic}
        return samples[("wharf_gateway_request_duration_seconds_count", frozenset(labels.items()))]

    assert count("who-1", "live") + count("who-2", "live") == 55
    assert count("who-3", "shadow") == 55  # latencies of the shadow, to compare with the live revisions'
    in_flight = {"namespace": "team", "service": "other", "revision": "other-1"}
    assert samples[("wharf_gateway_requests_in_flight", frozenset(in_flight.items()))] == 0
    assert samples[("wharf_gateway_activator_queued_requests", frozenset(in_flight.items()))] == 0


def test_metrics_at_a_service_host_are_its_replicas_not_the_gateways(gateway: RunningGateway) -> None:
    answer = httpx.get(f"http://127.0.0.1:{gateway.http_port}/metrics", headers={"host": OTHER}, timeout=10)
    assert answer.status_code == 200
    assert 'model="other"' in answer.text and "wharf_gateway_" not in answer.text
