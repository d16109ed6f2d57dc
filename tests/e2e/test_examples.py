"""The bundled example manifest, applied from its file and called through the gateway over REST and gRPC."""

from __future__ import annotations

import queue
import subprocess
import sys

import httpx
import joblib
import numpy as np
import tritonclient.grpc as triton

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
