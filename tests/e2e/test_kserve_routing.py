"""A KServe user's routes on a real `wharf up`: a `kserve.Model` subclass deployed as a custom model and answered
over V1 and V2 through the gateway (with KServe's own REST client), `NAME-predictor` hosts without a transformer,
gRPC routed by host across two namespaces serving a model of one name, and InferenceGraph steps over V2."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from tests.e2e.conftest import MODELS, ROOT, Daemon, custom_service, graph, ready, start_daemon
from tests.integration.test_kserve_clients import SEEN, kserve_client_sees
from tests.integration.test_kserve_predictor import PREDICTORS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


SERVICES = (
    custom_service("scaler", "kserve_predictors:Scaler")
    + custom_service("who", "wharf_test_models:WhoAmI", env={"WHO": "a"})
    + custom_service("add-one", "wharf_test_models:Add", protocol="v2", env={"ADD": "1"})
    + custom_service("add-ten", "wharf_test_models:Add", protocol="v2", env={"ADD": "10"})
)
GRAPHS = graph(
    "v2-both", "Ensemble", {"name": "one", "serviceName": "add-one"}, {"name": "ten", "serviceName": "add-ten"}
) + graph("v2-first", "Sequence", {"name": "first", "serviceName": "add-one"})
V2_BODY = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One `wharf up` for the module, its services ready; KServe's predictors importable as the test models are."""
    path = os.pathsep.join(map(str, (MODELS, PREDICTORS, ROOT)))
    running = start_daemon(tmp_path_factory.mktemp("kserve-routing") / "home", env={"PYTHONPATH": path})
    try:
        running.wharf("apply", "-f", "-", stdin=SERVICES + GRAPHS)
        for name in ("scaler", "who", "add-one", "add-ten"):
            running.wait(name, ready, timeout=90)
        yield running
    finally:
        running.stop()


def gateway(daemon: Daemon, host: str) -> httpx.Client:
    return httpx.Client(base_url=daemon.gateway_url, timeout=20, headers={"host": host})


def test_a_kserve_model_subclass_answers_v1_and_v2_through_the_gateway(daemon: Daemon) -> None:
    for host in ("scaler.default.example.com", "scaler-predictor.default.example.com"):
        with gateway(daemon, host) as client:
            v1 = client.post("/v1/models/scaler:predict", json={"instances": [[1, 2]]})
            assert v1.json() == {"predictions": [[2.0, 4.0]]}, v1.text
            body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
            v2 = client.post("/v2/models/scaler/infer", json=body)
            assert v2.status_code == 200 and v2.json()["outputs"][0]["data"] == [2.0, 4.0], v2.text
            assert client.get("/v1/models").json() == {"models": ["scaler"]}

    assert kserve_client_sees(daemon.gateway_url, {"host": "scaler.default.example.com"}) == SEEN


def _who(client: triton.InferenceServerClient, host: str | None = None) -> str:
    tensor = triton.InferInput("x", [1], "FP32")
    tensor.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    answer = client.infer("who", [tensor], headers={"host": host} if host else None, client_timeout=20)
    return answer.as_numpy("who")[0].decode()


def test_grpc_by_host_keeps_clients_of_one_namespace_when_another_serves_the_model(daemon: Daemon) -> None:
    grpc_url = f"127.0.0.1:{daemon.grpc_port}"
    client = triton.InferenceServerClient(grpc_url)
    behind_a_name = triton.InferenceServerClient(grpc_url, channel_args=[("grpc.default_authority", "wharf.local")])
    try:
        assert _who(client) == "a"  # one service serves `who`: its name is enough
        assert _who(behind_a_name, "who.default.example.com") == "a"
        second = custom_service("who", "wharf_test_models:WhoAmI", namespace="team-b", env={"WHO": "b"})
        daemon.wharf("apply", "-f", "-", stdin=second)
        _wait_ready_in(daemon, "team-b", "who")

        assert _who(client, "who.default.example.com") == "a"
        assert _who(behind_a_name, "who.default.example.com") == "a"
        assert _who(client, "who.team-b.example.com") == "b"
        assert _who(client, "who-predictor.team-b.example.com:80") == "b"
        with pytest.raises(InferenceServerException) as ambiguous:
            _who(client)
        assert ambiguous.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "(default/who, team-b/who)" in ambiguous.value.message()
    finally:
        client.close()
        behind_a_name.close()


def _wait_ready_in(daemon: Daemon, namespace: str, name: str, timeout_s: float = 90.0) -> None:
    daemon.wait(name, ready, timeout_s, namespace=namespace)


def test_graph_steps_call_v2_services_over_v2(daemon: Daemon) -> None:
    with gateway(daemon, "v2-both.default.example.com") as client:
        both = client.post("/", json=V2_BODY)
    assert both.status_code == 200, both.text
    assert {step: answer["outputs"][0]["data"] for step, answer in both.json().items()} == {
        "one": [2.0],
        "ten": [11.0],
    }
    with gateway(daemon, "v2-first.default.example.com") as client:
        refused = client.post("/", json={"instances": [[1.0]]})  # a V1 body for a V2 step
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error.startswith(
        "step 'first' of node 'root' failed: InferenceService 'add-one'"
        " (protocol v2: POST /v2/models/add-one/infer) answered status 400"
    ), error
