"""A transformer served by `wharf serve`, pointed straight at a predictor's `wharf serve` (no gateway between)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.integration.conftest import RunningServer, outputs_of

PROTOCOLS = ["v1", "v2", "grpc-v2"]
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]}
Serve = Callable[..., RunningServer]


def _pair(
    serve: Serve,
    predictor_class: str,
    model: str,
    protocol: str = "v1",
    calls: str | None = None,
    predictor_env: dict[str, str] | None = None,
    **env: str,
) -> tuple[RunningServer, RunningServer]:
    """A predictor (`wharf_test_models:PREDICTOR_CLASS` named `model`, with `predictor_env`) and the Scale
    transformer in front of it, calling model `calls` (default: `model`) over `protocol`; `env` joins the
    transformer's environment."""
    predictor = serve(f"wharf_test_models:{predictor_class}", "--name", model, env=predictor_env)
    address = {
        "WHARF_PREDICTOR_URL": predictor.url,
        "WHARF_PREDICTOR_GRPC_TARGET": f"127.0.0.1:{predictor.grpc_port}",
        "WHARF_PREDICTOR_PROTOCOL": protocol,
        "WHARF_PREDICTOR_MODEL": calls or model,
    }
    return predictor, serve("wharf_test_models:Scale", "--name", "scaled", env={**address, **env})


def _infer(transformer: RunningServer, body: dict = BODY, **headers: str) -> httpx.Response:
    return httpx.post(f"{transformer.url}/v2/models/scaled/infer", json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_transformer_calls_its_predictor_over_each_protocol(serve: Serve, protocol: str) -> None:
    _, transformer = _pair(serve, "Add", "adder", protocol, predictor_env={"ADD": "100"}, FACTOR="2")
    body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]}]}
    assert outputs_of(_infer(transformer, body))["y"].tolist() == [102.0, 104.0]


def test_a_predictor_that_is_down_is_a_clear_error_and_the_transformer_keeps_serving(serve: Serve) -> None:
    predictor, transformer = _pair(serve, "Add", "adder", WHARF_PREDICTOR_TIMEOUT_S="2")
    assert _infer(transformer).status_code == 200
    predictor.stop()
    for _ in range(2):  # each request fails on its own, at once, and the transformer goes on answering
        started = time.monotonic()
        down = _infer(transformer)
        assert down.status_code == 502, down.text
        assert predictor.url in down.json()["error"]
        assert time.monotonic() - started < 2


def test_a_transformer_without_a_predictor_address_does_not_start(serve: Serve) -> None:
    with pytest.raises(RuntimeError, match="does not know its predictor: set WHARF_PREDICTOR_URL"):
        serve("wharf_test_models:Scale", "--name", "scaled")


def test_a_predictor_refusing_the_transformers_request_is_a_502_that_names_its_answer(serve: Serve) -> None:
    _, transformer = _pair(serve, "Add", "adder", "v2", calls="nope")
    answer = _infer(transformer)
    assert answer.status_code == 502
    assert answer.json()["error"].startswith("predictor 'nope' answered 404: ")


def test_explain_goes_through_preprocess_to_the_predictors_explainer(serve: Serve) -> None:
    _, transformer = _pair(serve, "Weighted", "weighted", FACTOR="2")
    url = f"{transformer.url}/v1/models/scaled:explain"
    explained = httpx.post(url, json={"instances": [[1, 1, 1]]}, timeout=30)
    assert explained.json() == {"explanations": [{"contributions": [1.0, -2.0, 4.0], "score": 3.0}]}
    refused = httpx.post(url, json={"instances": [[1, 1]]}, timeout=30)
    assert refused.status_code == 502 and "predictor 'weighted' answered 400: " in refused.json()["error"]


def test_a_transformer_whose_predictor_does_not_explain_answers_501(serve: Serve) -> None:
    _, transformer = _pair(serve, "Add", "adder")
    answer = httpx.post(f"{transformer.url}/v1/models/scaled:explain", json={"instances": [[1.0]]}, timeout=30)
    assert answer.status_code == 501 and "model 'adder' does not explain its predictions" in answer.json()["error"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_transformer_passes_the_requests_trace_on_to_its_predictor(serve: Serve, protocol: str) -> None:
    _, transformer = _pair(serve, "Headers", "headers", protocol)
    trace = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x-request-id": "r-9"}
    assert outputs_of(_infer(transformer, **trace))["y"].tolist() == [f"{trace['traceparent']}|r-9"]
