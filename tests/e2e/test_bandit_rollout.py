"""A bandit rollout on `wharf up`: a canary whose answers earn rewards (posted to the service's `/feedback`) is
promoted by itself, and feedback the service cannot take is refused."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import Daemon, manifest, ready

pytestmark = pytest.mark.slow

HOST = "who.default.example.com"
V1, V2 = "who-predictor-00001", "who-predictor-00002"
BANDIT = {
    "serving.wharf.dev/rollout": "bandit",
    "serving.wharf.dev/bandit-min-rewards": "5",
    "serving.wharf.dev/bandit-confidence": "0.9",
}
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}


def _traffic(service: dict) -> dict[str, int]:
    return {t["revisionName"]: t["percent"] for t in service["status"]["components"]["predictor"]["traffic"]}


SERVICE = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/who"


def _predictor(control: httpx.Client) -> dict:
    """The predictor's status, read from the control API (quicker than a `wharf get` process)."""
    answer = control.get(SERVICE)
    assert answer.status_code == 200, answer.text
    return answer.json()["status"]["components"]["predictor"]


def test_a_rewarded_canary_is_promoted(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "a", annotations=BANDIT))
    daemon.wait("who", ready)
    daemon.wharf("apply", "-f", "-", stdin=manifest("who", "b", canary=50, annotations=BANDIT))
    canary = daemon.wait("who", lambda s: ready(s) and len(_traffic(s)) == 2)
    assert _traffic(canary) == {V2: 50, V1: 50}
    trial = daemon.wait("who", lambda s: "bandit" in s["status"])["status"]["bandit"]["predictor"]
    assert (trial["revision"], trial["against"], trial["percent"]) == (V2, V1, 50)
    assert trial["waiting"].startswith("warm-up: ")

    gateway = httpx.Client(base_url=daemon.gateway_url, timeout=10, headers={"host": HOST})
    with gateway as client, daemon.control() as control:
        answer = client.post("/v2/models/who/infer", json=BODY)
        assert answer.status_code == 200, answer.text
        request_id, arm = answer.headers["x-request-id"], answer.headers["x-wharf-arm"]
        assert arm in (V1, V2)
        reward = float(arm == V2)
        assert client.post("/feedback", json={"request_id": request_id, "reward": reward}).status_code == 200
        again = client.post("/feedback", json={"request_id": request_id, "reward": reward})
        assert again.status_code == 409, again.text  # one reward per answer
        unknown = client.post("/feedback", json={"request_id": "never-sent", "reward": 1})
        assert unknown.status_code == 404 and "request_id" in unknown.json()["error"]
        bad = client.post("/feedback", json={"request_id": request_id, "reward": "good"})
        assert bad.status_code == 400 and bad.json()["error"].startswith("reward: ")

        deadline = time.monotonic() + 90
        while (predictor := _predictor(control))["latestRolledoutRevision"] != V2:
            # b's answers earn 1, a's 0: b is promoted once each has 5 rewards
            assert time.monotonic() < deadline, predictor
            for _ in range(10):
                answer = client.post("/v2/models/who/infer", json=BODY)
                assert answer.status_code == 200, answer.text
                arm = answer.headers["x-wharf-arm"]
                assert answer.json()["outputs"][0]["data"][0] == {V1: "a", V2: "b"}[arm]
                feedback = {"request_id": answer.headers["x-request-id"], "reward": float(arm == V2)}
                assert client.post("/feedback", json=feedback).status_code == 200
    assert predictor["previousRolledoutRevision"] == V1
    assert [(t["revisionName"], t["percent"]) for t in predictor["traffic"]] == [(V2, 100)]
