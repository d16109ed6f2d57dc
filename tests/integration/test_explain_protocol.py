"""Explanations over every protocol of a real `wharf serve`: V1 `:explain`, V2 `/explain` (JSON and binary), gRPC
and REST on `{name}-explainer`, Wharf's InferenceClient; errors that say what to do instead."""

from __future__ import annotations

import queue
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.integration.conftest import RunningServer, launch
from wharf.client import SyncInferenceClient
from wharf.errors import Unimplemented
from wharf.protocol import v2
from wharf.protocol.grpc import codec
from wharf.protocol.grpc import grpc_predict_v2_pb2 as pb
from wharf.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from wharf.protocol.v2 import InferRequest, RequestedOutput, Tensor

TIMEOUT_S = 10
ROWS = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
CONTRIBUTIONS = ROWS * [0.5, -1.0, 2.0]
SCORES = CONTRIBUTIONS.sum(axis=1)
OUTPUTS = ["contributions", "base_value", "prediction"]
HOW_TO_EXPLAIN = "add spec.explainer to its InferenceService (shap or art) or override Model.explain"


def _body(rows: np.ndarray = ROWS, **extra: object) -> dict[str, object]:
    return {
        "inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}],
        **extra,
    }


def _address(server: RunningServer) -> str:
    return f"127.0.0.1:{server.grpc_port}"


def _check_explanation(outputs: dict[str, np.ndarray]) -> None:
    """`outputs` are Linear's explanation of ROWS."""
    assert list(outputs) == OUTPUTS
    np.testing.assert_allclose(outputs["contributions"], CONTRIBUTIONS)
    np.testing.assert_allclose(outputs["base_value"], [0, 0])
    np.testing.assert_allclose(outputs["prediction"], SCORES)


def _outputs(doc: dict[str, object]) -> dict[str, np.ndarray]:
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in doc["outputs"]}  # type: ignore[attr-defined]


def _grpc_message(model: str, rows: np.ndarray = ROWS) -> pb.ModelInferRequest:
    return codec.encode_request(InferRequest(inputs=[Tensor("x", rows)], id="g-1"), model)


@pytest.fixture(scope="module")
def linear() -> Iterator[RunningServer]:
    server = launch("wharf_explain_models:Linear", "--name", "linear")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rest(linear: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=linear.url, timeout=TIMEOUT_S) as client:
        yield client


@pytest.fixture(scope="module")
def stub(linear: RunningServer) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(_address(linear)) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def test_server_metadata_lists_the_explain_extension(linear: RunningServer, rest: httpx.Client) -> None:
    assert "explain" in rest.get("/v2").json()["extensions"]
    client = triton.InferenceServerClient(_address(linear))
    try:
        assert "explain" in client.get_server_metadata().extensions
    finally:
        client.close()


def test_v1_explain_answers_the_explanations_v1_body(rest: httpx.Client) -> None:
    answer = rest.post("/v1/models/linear:explain", json={"instances": ROWS.tolist()})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "explanations": [{"contributions": c.tolist(), "score": s} for c, s in zip(CONTRIBUTIONS, SCORES)]
    }


def test_v2_explain_answers_the_explanations_tensors_with_the_method(rest: httpx.Client) -> None:
    answer = rest.post("/v2/models/linear/explain", json=_body(id="e-1"))
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["model_name"] == "linear" and doc["id"] == "e-1" and doc["parameters"] == {"explainer": "test.linear"}
    _check_explanation(_outputs(doc))
    chosen = rest.post("/v2/models/linear/explain", json=_body(outputs=[{"name": "prediction"}])).json()
    assert [o["name"] for o in chosen["outputs"]] == ["prediction"]


def test_v2_explain_with_binary_tensors(rest: httpx.Client) -> None:
    request = InferRequest(
        inputs=[Tensor("x", ROWS)], outputs=[RequestedOutput(name, {"binary_data": True}) for name in OUTPUTS]
    )
    body, header_length = v2.encode_request(request, binary=True)
    headers = {v2.BINARY_HEADER: str(header_length), "content-type": "application/octet-stream"}
    answer = rest.post("/v2/models/linear/explain", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    response = v2.decode_response(answer.content, int(answer.headers[v2.BINARY_HEADER]))
    assert response.parameters == {"explainer": "test.linear"}
    _check_explanation({t.name: t.data for t in response.outputs})


def test_the_rest_alias_explains_for_any_v2_client(linear: RunningServer, rest: httpx.Client) -> None:
    answer = rest.post("/v2/models/linear-explainer/infer", json=_body())
    assert answer.status_code == 200, answer.text
    assert answer.json()["parameters"] == {"explainer": "test.linear"}
    _check_explanation(_outputs(answer.json()))
    client = triton_http.InferenceServerClient(f"127.0.0.1:{linear.http_port}")
    try:
        x = triton_http.InferInput("x", list(ROWS.shape), "FP64")
        x.set_data_from_numpy(ROWS, binary_data=True)
        wanted = [triton_http.InferRequestedOutput(name, binary_data=True) for name in OUTPUTS]
        result = client.infer("linear-explainer", [x], outputs=wanted)
        _check_explanation({name: result.as_numpy(name) for name in OUTPUTS})
    finally:
        client.close()


def test_grpc_model_infer_on_the_explainer_name_explains(linear: RunningServer, stub) -> None:  # type: ignore[no-untyped-def]
    client = triton.InferenceServerClient(_address(linear))
    try:
        x = triton.InferInput("x", list(ROWS.shape), "FP64")
        x.set_data_from_numpy(ROWS)
        result = client.infer("linear-explainer", [x], request_id="t-1")
        _check_explanation({o.name: result.as_numpy(o.name) for o in result.get_response().outputs})
        response = result.get_response()
        assert response.id == "t-1" and response.parameters["explainer"].string_param == "test.linear"
    finally:
        client.close()
    streamed = list(stub.ModelStreamInfer(iter([_grpc_message("linear-explainer")]), timeout=TIMEOUT_S))
    assert streamed[0].error_message == ""
    decoded = codec.decode_response(streamed[0].infer_response)
    assert decoded.id == "g-1" and decoded.parameters == {"explainer": "test.linear"}
    _check_explanation({t.name: t.data for t in decoded.outputs})


def test_the_inference_client_explains_over_v2_and_grpc(linear: RunningServer) -> None:
    request = InferRequest(inputs=[Tensor("x", ROWS)])
    for options in ({}, {"grpc_target": _address(linear), "protocol": "grpc-v2"}):
        with SyncInferenceClient(linear.url, **options) as client:
            response = client.explain_v2("linear", request)
            assert response.parameters == {"explainer": "test.linear"}
            _check_explanation({t.name: t.data for t in response.outputs})


def test_explanations_are_counted_by_protocol(rest: httpx.Client, stub) -> None:  # type: ignore[no-untyped-def]
    rest.post("/v2/models/linear/explain", json=_body())
    stub.ModelInfer(_grpc_message("linear-explainer"), timeout=TIMEOUT_S)
    metrics = rest.get("/metrics").text
    assert 'wharf_requests_total{model="linear",protocol="v2-rest-explain",status="200"}' in metrics
    assert 'wharf_requests_total{model="linear",protocol="grpc-explain",status="200"}' in metrics


def test_bad_explain_requests_get_4xx_naming_the_problem(rest: httpx.Client, stub) -> None:  # type: ignore[no-untyped-def]
    narrow = rest.post("/v2/models/linear/explain", json=_body(np.ones((1, 2))))
    assert narrow.status_code == 400 and "rows must have 3 features, got shape [1, 2]" in narrow.json()["error"]
    assert rest.post("/v2/models/linear/explain", content=b"{").status_code == 400
    assert rest.get("/v2/models/linear/explain").status_code == 405
    assert rest.post("/v2/models/linear/versions/9/explain", json=_body()).status_code == 404
    unknown = rest.post("/v2/models/nope-explainer/infer", json=_body())
    assert unknown.status_code == 404 and "model 'nope-explainer' is not in the repository" in unknown.json()["error"]
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(_grpc_message("linear-explainer", np.ones((1, 2))), timeout=TIMEOUT_S)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(_grpc_message("nope-explainer"), timeout=TIMEOUT_S)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "'nope-explainer'" in caught.value.details()


def test_a_model_without_explanations_says_how_to_get_them(echo_server: RunningServer) -> None:
    with httpx.Client(base_url=echo_server.url, timeout=TIMEOUT_S) as client:
        for path in ("/v2/models/echo/explain", "/v2/models/echo-explainer/infer"):
            answer = client.post(path, json=_body())
            assert answer.status_code == 501 and HOW_TO_EXPLAIN in answer.json()["error"], path
        v1 = client.post("/v1/models/echo:explain", json={"instances": ROWS.tolist()})
        assert v1.status_code == 501 and HOW_TO_EXPLAIN in v1.json()["error"]
    client = triton.InferenceServerClient(_address(echo_server))
    try:
        x = triton.InferInput("x", list(ROWS.shape), "FP64")
        x.set_data_from_numpy(ROWS)
        with pytest.raises(InferenceServerException) as caught:
            client.infer("echo-explainer", [x])
        assert caught.value.status() == "StatusCode.UNIMPLEMENTED" and HOW_TO_EXPLAIN in caught.value.message()
    finally:
        client.close()


def test_a_json_explanation_over_v2_points_to_v1(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_test_models:Weighted", "--name", "weighted")
    with httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as client:
        assert client.post("/v1/models/weighted:explain", json={"instances": ROWS.tolist()}).status_code == 200
        answer = client.post("/v2/models/weighted/explain", json=_body())
        assert answer.status_code == 501
        assert answer.json()["error"] == (
            "model 'weighted' explains its predictions in JSON only, which a V2 response cannot carry; "
            "ask KServe V1: POST /v1/models/weighted:explain"
        )
    with SyncInferenceClient(grpc_target=_address(server), protocol="grpc-v2") as grpc_client:
        with pytest.raises(Unimplemented, match="in JSON only"):
            grpc_client.explain_v2("weighted", InferRequest(inputs=[Tensor("x", ROWS)]))


def test_explanations_over_v2_and_grpc_share_the_bounded_explanation_threads(serve) -> None:  # type: ignore[no-untyped-def]
    env = {
        "WHARF_REQUEST_TIMEOUT_S": "1",
        "EXPLAIN_SLEEP_S": "3",
        "WHARF_PREDICT_THREADS": "1",
        "WHARF_MAX_QUEUED_EXPLANATIONS": "0",
    }
    server = serve("wharf_explain_models:Linear", "--name", "linear", env=env)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as client:
        late = client.post("/v2/models/linear/explain", json=_body())
        assert late.status_code == 504 and "did not explain within 1.0 s" in late.json()["error"]
        with grpc.insecure_channel(_address(server)) as channel:
            with pytest.raises(grpc.RpcError) as caught:  # the first still holds the one thread
                pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(_grpc_message("linear-explainer"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "all 1 explanation threads are busy" in caught.value.details()
        assert client.post("/v2/models/linear/infer", json=_body()).json()["outputs"][0]["data"] == SCORES.tolist()


def test_a_model_of_the_explainer_name_is_served_as_itself(serve, iris_model: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("iris", "iris-explainer"):
        (tmp_path / name).mkdir()
        shutil.copy(iris_model, tmp_path / name / "model.joblib")
    server = serve(str(tmp_path))
    row = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    with httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as client:
        inferred = client.post("/v2/models/iris-explainer/infer", json=row)
        assert inferred.status_code == 200 and inferred.json()["model_name"] == "iris-explainer"
        assert client.post("/v2/models/iris/explain", json=row).status_code == 501
        assert client.post("/v2/repository/models/iris-explainer/unload").status_code == 200
        unloaded = client.post("/v2/models/iris-explainer/infer", json=row)  # not ready: not the alias
        assert unloaded.status_code == 503 and "not ready" in unloaded.json()["error"]


def test_a_model_may_read_its_v1_explain_body_itself(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("wharf_explain_models:Mirror", "--name", "mirror")
    image = [[0.0, 1.0], [2.0, 3.0]]
    with httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as client:
        answer = client.post("/v1/models/mirror:explain", json={"instances": [image, 7]})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"explanations": {"adversarial_example": (-np.array(image)).tolist(), "label": [7]}}
        wrong = client.post("/v1/models/mirror:explain", json={"instances": [image]})
        assert wrong.status_code == 400
        assert (
            wrong.json()["error"] == "model 'mirror' rejected the explain request: 'instances' must be [image, label]"
        )
        assert client.post("/v1/models/mirror:explain", content=b"[1]").status_code == 400
        deep = b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        assert client.post("/v1/models/mirror:explain", content=deep).status_code == 400
        # its :predict body is read by the V1 decoder, which refuses the ragged rows
        assert client.post("/v1/models/mirror:predict", json={"instances": [image, 7]}).status_code == 400


def test_a_stream_reports_a_failed_explanation_in_band(echo_server: RunningServer) -> None:
    answers: queue.Queue = queue.Queue()
    client = triton.InferenceServerClient(_address(echo_server))
    try:
        client.start_stream(callback=lambda result, error: answers.put((result, error)))
        x = triton.InferInput("x", list(ROWS.shape), "FP64")
        x.set_data_from_numpy(ROWS)
        client.async_stream_infer("echo-explainer", [x])
        result, error = answers.get(timeout=TIMEOUT_S)
        assert result is None and HOW_TO_EXPLAIN in error.message()
        client.async_stream_infer("echo", [x])  # the stream goes on
        result, error = answers.get(timeout=TIMEOUT_S)
        assert error is None and np.array_equal(result.as_numpy("x"), ROWS)
    finally:
        client.stop_stream()
        client.close()
