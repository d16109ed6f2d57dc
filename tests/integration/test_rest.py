"""The model server over REST, as a real `wharf serve` process called with a real HTTP client."""

from __future__ import annotations

import socket

import httpx
import joblib
import numpy as np
import orjson
import pytest
from sklearn.datasets import load_iris

from tests.integration.conftest import RunningServer

ROWS = load_iris().data[[0, 60, 120]].tolist()


def _infer_body(rows: list[list[float]], **extra) -> dict:  # type: ignore[no-untyped-def]
    flat = [x for row in rows for x in row]
    return {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP32", "data": flat}], **extra}


@pytest.fixture(scope="module")
def client(iris_server: RunningServer):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=iris_server.url, timeout=10) as c:
        yield c


def test_health_and_server_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "wharf" and "model_repository" in meta["extensions"]


def test_model_metadata_and_readiness(client: httpx.Client) -> None:
    meta = client.get("/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert client.get("/v2/models/iris/ready").status_code == 200
    assert client.get("/v1/models/iris").json() == {"name": "iris", "ready": True}


def test_v2_infer_matches_scikit_learn(client: httpx.Client, iris_model) -> None:  # type: ignore[no-untyped-def]
    expected = joblib.load(iris_model).predict(np.array(ROWS, dtype=np.float32))
    answer = client.post("/v2/models/iris/infer", json=_infer_body(ROWS, id="req-7"))
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["model_name"] == "iris" and doc["id"] == "req-7"
    assert doc["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [3], "data": expected.tolist()}]


def test_predict_proba_by_parameter_or_requested_output(client: httpx.Client, iris_model) -> None:  # type: ignore[no-untyped-def]
    expected = joblib.load(iris_model).predict_proba(np.array(ROWS, dtype=np.float32))
    by_parameter = client.post("/v2/models/iris/infer", json=_infer_body(ROWS, parameters={"method": "predict_proba"}))
    by_output = client.post("/v2/models/iris/infer", json=_infer_body(ROWS, outputs=[{"name": "predict_proba"}]))
    for answer in (by_parameter, by_output):
        out = answer.json()["outputs"][0]
        assert out["name"] == "predict_proba" and out["shape"] == [3, 3]
        assert np.allclose(out["data"], expected.reshape(-1))


def test_v1_predict(client: httpx.Client, iris_model) -> None:  # type: ignore[no-untyped-def]
    expected = joblib.load(iris_model).predict(np.array(ROWS))
    assert client.post("/v1/models/iris:predict", json={"instances": ROWS}).json() == {"predictions": expected.tolist()}
    assert client.post("/v1/models/iris:predict", json={"inputs": ROWS}).json() == {"predictions": expected.tolist()}
    proba = client.post("/v1/models/iris:predict", json={"instances": ROWS, "parameters": {"method": "predict_proba"}})
    assert np.allclose(proba.json()["predictions"], joblib.load(iris_model).predict_proba(np.array(ROWS)))


def test_binary_input_and_output(client: httpx.Client, iris_model) -> None:  # type: ignore[no-untyped-def]
    raw = np.array(ROWS, dtype="<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "input-0", "shape": [3, 4], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
            ],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    )
    answer = client.post(
        "/v2/models/iris/infer",
        content=header + raw,
        headers={"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    out = orjson.loads(answer.content[:length])["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 24
    expected = joblib.load(iris_model).predict(np.array(ROWS, dtype=np.float32))
    assert np.frombuffer(answer.content[length:], dtype="<i8").tolist() == expected.tolist()


BAD_REQUESTS = [
    ("/v2/models/iris/infer", b"{oops", 400, "malformed JSON"),
    ("/v2/models/iris/infer", b'{"inputs": "x"}', 400, "'inputs' must be a non-empty list"),
    (
        "/v2/models/iris/infer",
        orjson.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FLOAT", "data": [1, 2, 3, 4]}]}),
        400,
        "unknown datatype",
    ),
    (
        "/v2/models/iris/infer",
        orjson.dumps({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
        400,
        "holds 8 elements but data has 4",
    ),
    (
        "/v2/models/iris/infer",
        orjson.dumps(
            {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": ["a", "b", "c", "d"]}]}
        ),
        400,
        "must be numbers",
    ),
    (
        "/v2/models/iris/infer",
        orjson.dumps(
            {"inputs": [{"name": "input-0", "shape": [100000, 100000, 100000], "datatype": "FP64", "data": [1]}]}
        ),
        400,
        "holds 1000000000000000 elements",
    ),
    (
        "/v2/models/iris/infer",
        orjson.dumps({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
        400,
        "takes 4 features per row, got 3",
    ),
    (
        "/v2/models/iris/infer",
        orjson.dumps(
            {
                "inputs": [
                    {"name": "a", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                    {"name": "b", "shape": [1], "datatype": "FP32", "data": [1]},
                ]
            }
        ),
        400,
        "takes one input tensor",
    ),
    (
        "/v2/models/iris/infer",
        orjson.dumps(_infer_body([[1, 2, 3, 4]], parameters={"method": "fit"})),
        400,
        "has no method 'fit'",
    ),
    (
        "/v2/models/iris/infer",
        orjson.dumps(_infer_body([[1, 2, 3, 4]], outputs=[{"name": "nope"}])),
        400,
        "no output(s) ['nope']",
    ),
    ("/v2/models/nope/infer", orjson.dumps(_infer_body([[1, 2, 3, 4]])), 404, "model 'nope' is not in the repository"),
    ("/v2/models/iris/versions/9/infer", orjson.dumps(_infer_body([[1, 2, 3, 4]])), 404, "has no version '9'"),
    ("/v2/models/iris/explode", b"{}", 404, "no endpoint"),
    ("/v1/models/iris:predict", b'{"instances": [[1, 2], [3]]}', 400, "ragged"),
    ("/v1/models/iris:train", b"{}", 404, "no V1 verb"),
    ("/v1/models/iris:explain", b'{"instances": [[1, 2, 3, 4]]}', 501, "does not explain its predictions"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(
    client: httpx.Client, path: str, body: bytes, status: int, message: str
) -> None:
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status
    assert message in answer.json()["error"]
    assert client.post("/v2/models/iris/infer", json=_infer_body(ROWS)).status_code == 200


def test_a_websocket_upgrade_is_answered_as_plain_http(client: httpx.Client) -> None:
    upgrade = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13"}
    answer = client.get("/v2/models/nope", headers={**upgrade, "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert answer.status_code == 404 and "model 'nope' is not in the repository" in answer.json()["error"]


def test_a_wrong_method_is_a_405_naming_the_right_one(client: httpx.Client) -> None:
    answer = client.get("/v2/models/iris/infer")
    assert answer.status_code == 405 and "use POST" in answer.json()["error"] and answer.headers["allow"] == "POST"


def test_oversized_body_is_refused_before_it_is_read(iris_server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", iris_server.http_port), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\n\r\n")
        reply = b""
        while b"exceeds the limit" not in reply and (chunk := sock.recv(65536)):
            reply += chunk
    reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and "exceeds the limit" in reply


def test_binary_header_mismatch_is_a_400(client: httpx.Client) -> None:
    answer = client.post(
        "/v2/models/iris/infer", content=b'{"inputs": []}', headers={"Inference-Header-Content-Length": "99"}
    )
    assert answer.status_code == 400 and "does not fit" in answer.json()["error"]


def test_metrics_count_requests_per_model_protocol_and_status(client: httpx.Client) -> None:
    client.post("/v2/models/iris/infer", json=_infer_body(ROWS))
    client.post("/v2/models/iris/infer", content=b"{bad")
    text = client.get("/metrics").text
    assert 'wharf_requests_total{model="iris",protocol="v2-rest",status="200"}' in text
    assert 'wharf_requests_total{model="iris",protocol="v2-rest",status="400"}' in text
    assert 'wharf_request_duration_seconds_bucket{le="0.005",model="iris",protocol="v2-rest",status="200"}' in text
    assert 'wharf_requests_in_flight{model="iris"} 0.0' in text
    assert 'wharf_model_load_seconds{model="iris",version=""}' in text
