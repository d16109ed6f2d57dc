"""The bundled example manifest, applied from its file and called through the gateway over REST and gRPC."""

from __future__ import annotations

import queue
import subprocess
import sys

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.grpc as triton
from sklearn.datasets import load_digits

from tests.e2e.conftest import ROOT, Daemon, ready

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def test_local_iris_example_over_rest_and_grpc(daemon: Daemon) -> None:
    model = ROOT / "examples/iris/model.joblib"
    if not model.exists():  # `make run` trains it; so does this test
        subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(model)], check=True, timeout=120)
    expected = joblib.load(model).predict(np.array(ROWS)).tolist()

    assert "inferenceservice/iris created" in daemon.wharf("apply", "-f", "examples/isvc/local-iris.yaml").stdout
    daemon.wait("iris", ready)
    with httpx.Client(base_url=daemon.gateway_url, timeout=10) as client:
        by_host = client.post(
            "/v1/models/iris:predict", json={"instances": ROWS}, headers={"host": "iris.default.example.com"}
        )
        assert by_host.json() == {"predictions": expected}
        by_path = client.post("/serving/default/iris/v1/models/iris:predict", json={"instances": ROWS})
        assert by_path.json() == {"predictions": expected}

    grpc = triton.InferenceServerClient(f"127.0.0.1:{daemon.grpc_port}")
    try:
        tensor = triton.InferInput("input-0", [2, 4], "FP64")
        tensor.set_data_from_numpy(np.array(ROWS))
        answer = grpc.infer("iris", [tensor])  # routed by the model name in the request
        assert answer.as_numpy("predict").tolist() == expected
        assert grpc.is_model_ready("iris", headers={"x-wharf-service": "default/iris"})
        streamed: queue.Queue = queue.Queue()
        grpc.start_stream(lambda result, error: streamed.put((result, error)))
        for _ in range(3):
            grpc.async_stream_infer("iris", [tensor])  # ModelStreamInfer through the gateway
        for _ in range(3):
            result, error = streamed.get(timeout=10)
            assert error is None and result.as_numpy("predict").tolist() == expected
        grpc.stop_stream()
    finally:
        grpc.close()

    described = daemon.wharf("describe", "isvc", "iris").stdout
    assert "latestReadyRevision: iris-predictor-00001" in described


@pytest.mark.slow
def test_the_explainer_examples(daemon: Daemon) -> None:
    """Tree SHAP (its explainer scaled to zero until asked) and ART's SquareAttack, applied from their files."""
    models = ROOT / "examples/explainers/models"
    if not (models / "digits.joblib").exists():
        subprocess.run([sys.executable, str(ROOT / "examples/explainers/train.py")], check=True, timeout=300)
    for example in ("explainer-shap.yaml", "explainer-art.yaml"):
        daemon.wharf("apply", "-f", f"examples/isvc/{example}")
    daemon.wait("iris-shap", ready, timeout=120)
    daemon.wait("digits-art", ready, timeout=120)
    with httpx.Client(base_url=daemon.gateway_url, timeout=120) as client:
        explained = client.post(
            "/v1/models/iris-shap:explain", json={"instances": ROWS}, headers={"host": "iris-shap.default.example.com"}
        )
        assert explained.status_code == 200, explained.text
        body = explained.json()
        assert body["method"] == "shap.tree"
        forest = joblib.load(models / "iris-forest.joblib")
        for row, found in zip(forest.predict_proba(np.array(ROWS)), body["explanations"]):
            assert found["feature_names"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
            total = np.asarray(found["base_values"]) + np.asarray(found["contributions"]).sum(axis=0)
            np.testing.assert_allclose(total, row, atol=1e-6)

        digits = load_digits()
        attacked = client.post(
            "/v1/models/digits-art:explain",
            json={"instances": [digits.images[0].tolist(), int(digits.target[0])]},
            headers={"host": "digits-art.default.example.com"},
        )
        assert attacked.status_code == 200, attacked.text
        found = attacked.json()["explanations"]
        example = np.asarray(found["adversarial_example"]).reshape(1, -1)
        classifier = joblib.load(models / "digits.joblib")
        assert found["prediction"] == digits.target[0] != found["adversarial_prediction"]
        assert found["adversarial_prediction"] == classifier.predict(example)[0]
    assert "ExplainerReady" in daemon.wharf("describe", "isvc", "iris-shap").stdout
