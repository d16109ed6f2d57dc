"""`gateway_predictor`: the iris model (a real `wharf serve` process) called through a real gateway over V2 REST,
V1 REST and V2 gRPC, answering its probabilities; the gateway's payload events of these calls are recognisable as
the detectors' own."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest

from tests.event_sink import EventSink
from tests.integration.conftest import RunningServer, launch
from tests.integration.test_gateway import RunningGateway
from tests.processes import ROOT
from wharf.client.inference import Protocol
from wharf.errors import InvalidInput
from wharf.gateway import GatewaySettings, Replica, Revision, RouteTable, Service
from wharf.logger import LogTarget
from wharf.monitor.detectors import gateway_predictor, is_detector_request

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]
HOST = "iris.default.example.com"
REVISION = "iris-predictor-00001"
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


@pytest.fixture(scope="module")
def iris_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("iris") / "model.joblib"
    subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(path)], check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def iris(iris_path: Path) -> Iterator[RunningServer]:
    server = launch(str(iris_path), "--name", "iris")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sink() -> Iterator[EventSink]:
    running = EventSink()
    yield running
    running.close()


@pytest.fixture(scope="module")
def gateway(iris: RunningServer, sink: EventSink) -> Iterator[RunningGateway]:
    running = RunningGateway(GatewaySettings())
    target = LogTarget(sink.url, "request", "iris", "default", "predictor", REVISION, f"http://{HOST}")
    replica = Replica("iris-0", iris.url, f"127.0.0.1:{iris.grpc_port}", True)
    revision = Revision(REVISION, (replica,), 10.0, 0, target)
    running.update(RouteTable((Service("default", "iris", "iris", ((REVISION, 100),), {}, {REVISION: revision}),)))
    yield running
    running.stop()


@pytest.mark.parametrize("protocol", ["v2", "v1", "grpc-v2"])
async def test_the_predictor_answers_the_models_probabilities_through_the_gateway(
    gateway: RunningGateway, sink: EventSink, iris_path: Path, protocol: Protocol
) -> None:
    url = f"127.0.0.1:{gateway.grpc_port}" if protocol == "grpc-v2" else f"http://127.0.0.1:{gateway.http_port}"
    predict = gateway_predictor(url, HOST, "iris", protocol, timeout_s=10)
    before = len(sink.events)
    try:
        answer = await predict(ROWS)
    finally:
        await predict.close()
    expected = joblib.load(iris_path).predict_proba(ROWS)
    assert answer.dtype == np.float64 and answer.shape == (2, 3)
    np.testing.assert_allclose(answer, expected, rtol=1e-6)
    gateway.run(gateway.gateway.payloads.flush(10))
    [logged] = sink.wait_for(before + 1)[before:]  # the gateway logged the call, under the detectors' id
    assert is_detector_request(logged["id"])


async def test_an_output_the_model_does_not_have_is_the_models_refusal(gateway: RunningGateway) -> None:
    predict = gateway_predictor(f"http://127.0.0.1:{gateway.http_port}", HOST, "iris", output="no_such_output")
    try:
        with pytest.raises(InvalidInput, match="no_such_output"):
            await predict(ROWS)
    finally:
        await predict.close()


def test_only_the_detectors_ids_are_theirs() -> None:
    assert is_detector_request("wharf-monitor-0123") and not is_detector_request("req-42")
