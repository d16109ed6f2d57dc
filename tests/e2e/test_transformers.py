"""Transformers on `wharf up`: a transformer's replicas in front of a predictor's, each scaled and rolled out on
its own, calling the predictor through the gateway over V1, V2 REST and V2 gRPC; and the two examples."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from collections.abc import Callable

import httpx
import joblib
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from examples.transformers.digits import digit_features
from tests.e2e.conftest import ROOT, Daemon, ready


def scaled(
    protocol: str,
    add: int,
    transformer_replicas: int = 1,
    *,
    factor: int = 3,
    canary: int | None = None,
    transformer: str | None = "Scale",
) -> str:
    """`scaled`: the Scale transformer (x * `factor`) in front of the Add predictor (+ `add`); `transformer`
    names another test class, or None for the predictor alone."""
    front = f"""  transformer:
    minReplicas: {transformer_replicas}
    model:
      modelFormat: {{name: custom}}
      storageUri: wharf_test_models:{transformer}
      env: [{{name: FACTOR, value: '{factor}'}}]
"""
    return f"""
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: scaled}}
spec:
{front if transformer else ""}  predictor:
{f"    canaryTrafficPercent: {canary}" if canary is not None else ""}
    model:
      modelFormat: {{name: custom}}
      protocolVersion: {protocol}
      storageUri: wharf_test_models:Add
      env: [{{name: ADD, value: '{add}'}}]
"""


def infer(daemon: Daemon, host: str, data: list[float]) -> httpx.Response:
    body = {"inputs": [{"name": "x", "shape": [len(data)], "datatype": "FP64", "data": data}]}
    return httpx.post(f"{daemon.gateway_url}/v2/models/scaled/infer", json=body, headers={"host": host}, timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["v1", "v2", "grpc-v2"])
def test_a_transformer_in_front_of_a_predictor(daemon: Daemon, protocol: str) -> None:
    daemon.wharf("apply", "-f", "-", stdin=scaled(protocol, add=10, transformer_replicas=2))
    service = daemon.wait("scaled", ready)
    components = service["status"]["components"]
    assert components["transformer"]["latestReadyRevision"] == "scaled-transformer-00001"
    assert components["predictor"]["latestReadyRevision"] == "scaled-predictor-00001"
    assert components["predictor"]["url"] == "http://scaled-predictor.default.example.com"
    assert service["status"]["url"] == "http://scaled.default.example.com"

    # x * 3 in the transformer (FACTOR is in its environment only), then + 10 in the predictor (ADD in its own).
    answers = [infer(daemon, "scaled.default.example.com", [1.0, 2.0]) for _ in range(20)]
    assert all(a.status_code == 200 for a in answers), answers[0].text
    outputs = {o["name"]: o["data"] for o in answers[0].json()["outputs"]}
    assert outputs["y"] == [13.0, 16.0]
    # The transformer scales on its own: two replicas of it (least in-flight balancing reaches both), one predictor.
    assert len({a.json()["outputs"][1]["data"][0] for a in answers}) == 2
    revisions = [r["revision"] for r in daemon.isvc("scaled")["status"]["replicaStates"]]
    assert sorted(revisions) == ["scaled-predictor-00001", "scaled-transformer-00001", "scaled-transformer-00001"]

    # The predictor alone stays reachable on its own host (what the transformer calls).
    direct = infer(daemon, "scaled-predictor.default.example.com", [1.0])
    assert direct.json()["outputs"][0]["data"] == [11.0]

    # A new predictor revision rolls out behind the unchanged transformer.
    daemon.wharf("apply", "-f", "-", stdin=scaled(protocol, add=20, transformer_replicas=2))
    service = daemon.wait(
        "scaled", lambda s: s["status"]["components"]["predictor"]["latestReadyRevision"] == "scaled-predictor-00002"
    )
    assert service["status"]["components"]["transformer"]["latestCreatedRevision"] == "scaled-transformer-00001"
    daemon.wait(
        "scaled",
        lambda s: (
            s["status"]["components"]["predictor"]["traffic"]
            == [{"revisionName": "scaled-predictor-00002", "percent": 100, "latestRevision": True, "tag": "latest"}]
        ),
    )
    assert infer(daemon, "scaled.default.example.com", [1.0]).json()["outputs"][0]["data"] == [23.0]


def test_a_transformer_answers_v1_and_names_a_bad_request(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=1))
    daemon.wait("scaled", ready)
    with httpx.Client(base_url=daemon.gateway_url, headers={"host": "scaled.default.example.com"}, timeout=30) as c:
        answer = c.post("/v1/models/scaled:predict", json={"instances": [[1.0, 2.0]]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [{"y": [4.0, 7.0], "pid": answer.json()["predictions"][0]["pid"]}]
        bad = c.post("/v1/models/scaled:predict", json={"instances": []})
        assert bad.status_code == 400 and "instances" in bad.json()["error"]
        assert c.post("/v1/models/scaled:predict", json={"instances": [[0.0]]}).json()["predictions"][0]["y"] == [1.0]


def test_refused_at_apply_a_container_image_and_names_taken_twice(daemon: Daemon) -> None:
    refused = daemon.wharf("apply", "-f", "examples/isvc/transformer.yaml", check=False)
    assert refused.returncode != 0
    assert "spec.transformer.containers" in refused.stderr + refused.stdout

    daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=1))
    taken = scaled("v2", add=1).replace("name: scaled}", "name: scaled-predictor}").split("  transformer:")[0]
    taken += "  predictor:" + scaled("v2", add=1).split("  predictor:")[1]
    clash = daemon.wharf("apply", "-f", "-", stdin=taken, check=False)
    assert clash.returncode != 0
    assert "would both answer at scaled-predictor.default.example.com" in clash.stderr + clash.stdout
    graph = "apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\nmetadata: {name: scaled}\nspec:\n"
    graph += "  nodes: {root: {routerType: Sequence, steps: [{serviceName: scaled}]}}\n"
    clash = daemon.wharf("apply", "-f", "-", stdin=graph, check=False)
    assert "InferenceGraph default/scaled and InferenceService default/scaled" in clash.stderr + clash.stdout
    daemon.wait("scaled", ready)  # and the daemon serves on
    assert infer(daemon, "scaled.default.example.com", [1.0]).json()["outputs"][0]["data"] == [4.0]


@pytest.fixture(scope="module")
def example_models() -> None:
    models = ROOT / "examples/transformers/models"
    if not (models / "digits.joblib").exists():  # trained by `make run` too
        train = [sys.executable, str(ROOT / "examples/transformers/train.py")]
        subprocess.run(train, check=True, timeout=300, cwd=ROOT)


def png(pixels: np.ndarray) -> str:
    """An 8x8 sklearn digit (ink 16) as a 32x32 PNG of dark ink on white, base64-encoded."""
    grey = (255 - pixels * 255 / 16).round().astype(np.uint8)
    picture = Image.fromarray(grey, mode="L").resize((32, 32), Image.Resampling.NEAREST)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.mark.slow
def test_the_text_and_image_transformer_examples(daemon: Daemon, example_models: None) -> None:
    for example in ("transformer-text.yaml", "transformer-image.yaml"):
        daemon.wharf("apply", "-f", f"examples/isvc/{example}")
    daemon.wait("reviews", ready)
    daemon.wait("digits", ready)
    with httpx.Client(base_url=daemon.gateway_url, timeout=30) as client:
        reviews = client.post(
            "/v1/models/reviews:predict",
            json={"instances": ["A wonderful, moving story.", "Dull acting and a clumsy plot."]},
            headers={"host": "reviews.default.example.com"},
        )
        assert reviews.status_code == 200, reviews.text
        assert reviews.json() == {"predictions": ["positive", "negative"]}

        digits = load_digits()
        images = [png(row.reshape(8, 8)) for row in digits.data[:30]]
        features = np.stack([digit_features(image.encode()) for image in images])
        expected = joblib.load(ROOT / "examples/transformers/models/digits.joblib").predict(features)
        answer = client.post(
            "/v1/models/digits:predict",
            json={"instances": images},
            headers={"host": "digits.default.example.com"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == expected.tolist()
        assert (expected == digits.target[:30]).mean() > 0.9  # the transformer keeps the digits readable

        not_an_image = client.post(
            "/v1/models/digits:predict",
            json={"instances": ["bm90IGFuIGltYWdl"]},
            headers={"host": "digits.default.example.com"},
        )
        assert not_an_image.status_code == 400
        assert "image" in not_an_image.json()["error"]


def component(name: str, field: str, value: object) -> Callable[[dict], bool]:
    return lambda s: s["status"]["components"].get(name, {}).get(field) == value


def answers(daemon: Daemon, count: int) -> set[float]:
    return {infer(daemon, "scaled.default.example.com", [1.0]).json()["outputs"][0]["data"][0] for _ in range(count)}


@pytest.mark.slow
def test_rolling_back_a_predictor_canary_leaves_a_promoted_transformer_alone(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=1))
    daemon.wait("scaled", ready)
    daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=1, factor=4))
    daemon.wait("scaled", component("transformer", "latestRolledoutRevision", "scaled-transformer-00002"))
    daemon.wait("scaled", lambda s: len(s["status"]["components"]["transformer"]["traffic"]) == 1 and ready(s))
    assert answers(daemon, 5) == {5.0}  # 1 * 4 + 1
    daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=2, factor=4, canary=50))
    daemon.wait("scaled", component("predictor", "latestReadyRevision", "scaled-predictor-00002"))
    daemon.wait("scaled", lambda s: len(s["status"]["components"]["predictor"]["traffic"]) == 2)
    assert answers(daemon, 30) == {5.0, 6.0}

    daemon.wharf("rollout", "rollback", "scaled")
    service = daemon.wait("scaled", lambda s: len(s["status"]["components"]["predictor"]["traffic"]) == 1)
    transformer = service["status"]["components"]["transformer"]
    assert transformer["latestRolledoutRevision"] == "scaled-transformer-00002"
    assert [t["revisionName"] for t in transformer["traffic"]] == ["scaled-transformer-00002"]
    assert answers(daemon, 10) == {5.0}


@pytest.mark.slow
def test_a_transformer_added_to_a_running_service_takes_its_host_once_it_answers(daemon: Daemon) -> None:
    daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=1, transformer=None))
    daemon.wait("scaled", ready)
    assert answers(daemon, 3) == {2.0}

    daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=1, transformer="FailsToLoad"))
    service = daemon.wait(  # the broken transformer has tried to start, and failed
        "scaled",
        lambda s: any(
            r["revision"] == "scaled-transformer-00001" and r["last_error"] for r in s["status"]["replicaStates"]
        ),
    )
    assert service["status"]["components"]["predictor"]["url"] == "http://scaled.default.example.com"
    assert not ready(service)
    assert answers(daemon, 3) == {2.0}  # the predictor keeps the service's host

    daemon.wharf("apply", "-f", "-", stdin=scaled("v2", add=1))
    daemon.wait("scaled", component("transformer", "url", "http://scaled.default.example.com"))
    daemon.wait("scaled", ready)
    assert answers(daemon, 3) == {4.0}  # 1 * 3 + 1
