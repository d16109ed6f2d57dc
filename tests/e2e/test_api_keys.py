"""Per-InferenceService API keys through a real `wharf up`: `wharf apikey`, the annotation, REST and gRPC."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.e2e.conftest import Daemon, manifest, ready

BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
ANNOTATION = "serving.wharf.dev/api-key-sha256"


def _new_key(daemon: Daemon) -> tuple[str, str]:
    """A key and its digest, as `wharf apikey` prints them."""
    lines = dict(line.split(": ", 1) for line in daemon.wharf("apikey").stdout.splitlines())
    return lines["key"], lines["annotation"].split(": ", 1)[1].strip('"')


def test_a_service_with_keys_answers_only_requests_that_carry_one(daemon: Daemon) -> None:
    key, digest = _new_key(daemon)
    other, other_digest = _new_key(daemon)
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a", annotations={ANNOTATION: f"{digest},{other_digest}"}))
    daemon.wharf("apply", "-f", "-", stdin=manifest("open", "b"))
    daemon.wait("who", ready)
    daemon.wait("open", ready)
    with httpx.Client(base_url=daemon.gateway_url, timeout=10, headers={"host": "who.default.example.com"}) as client:
        refused = client.post("/v2/models/who/infer", json=BODY)
        assert refused.status_code == 401 and "needs an API key" in refused.json()["error"]
        wrong = client.post("/v2/models/who/infer", json=BODY, headers={"authorization": "Bearer not-a-key"})
        assert wrong.status_code == 401 and "not one of" in wrong.json()["error"]
        for headers in ({"authorization": f"Bearer {key}"}, {"x-api-key": other}):
            answer = client.post("/v2/models/who/infer", json=BODY, headers=headers)
            assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == ["a"]
        by_path = client.post("/serving/default/who/v2/models/who/infer", json=BODY, headers={"host": "elsewhere"})
        assert by_path.status_code == 401
        predictor_host = {"host": "who-predictor.default.example.com"}
        assert client.post("/v2/models/who/infer", json=BODY, headers=predictor_host).status_code == 401
    unkeyed = httpx.post(
        f"{daemon.gateway_url}/v2/models/open/infer", json=BODY, headers={"host": "open.default.example.com"}
    )
    assert unkeyed.status_code == 200  # a service without keys asks for none

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{daemon.grpc_port}")
    tensor = grpcclient.InferInput("x", [1], "FP32")
    tensor.set_data_from_numpy(np.array([1], dtype=np.float32))
    try:
        with pytest.raises(InferenceServerException) as refused_grpc:
            client.infer("who", [tensor], headers={"x-wharf-service": "default/who"})
        assert refused_grpc.value.status() == "StatusCode.UNAUTHENTICATED"
        answer = client.infer("who", [tensor], headers={"x-wharf-service": "default/who", "x-api-key": key})
        assert answer.as_numpy("who").tolist() == [b"a"]
    finally:
        client.close()


def test_a_malformed_key_annotation_is_refused_at_apply(daemon: Daemon) -> None:
    run = daemon.wharf(
        "apply", "-f", "-", stdin=manifest("who", "a", annotations={ANNOTATION: "my-password"}), check=False
    )
    assert run.returncode == 1 and "SHA-256 digests" in run.stderr and "wharf apikey" in run.stderr
