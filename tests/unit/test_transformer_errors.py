"""What a transformer answers when its predictor call fails: the predictor's refusal is a 502, the client's own
refusal of a request it cannot send keeps its status, and a busy or slow predictor keeps its own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from wharf.client import InferenceClient
from wharf.errors import (
    InvalidInput,
    PredictorFailed,
    RequestTimeout,
    ServerBusy,
    WharfError,
    answered,
    from_grpc_code,
    from_http_status,
)
from wharf.model.repository import ModelRepository
from wharf.protocol.v2 import InferRequest, Tensor
from wharf.transformer import PredictorSettings, Transformer

pytestmark = pytest.mark.anyio
NOWHERE = "http://127.0.0.1:9"  # never connected to: the client refuses these requests before sending them


class Raising:
    """A predictor client whose `infer` raises `error`."""

    def __init__(self, error: WharfError) -> None:
        self.error = error

    async def infer(self, *_: Any, **__: Any) -> Any:
        raise self.error

    async def close(self) -> None:
        pass


def _transformer(protocol: str = "v1", **settings: Any) -> Transformer:
    address = {"grpc_target": "127.0.0.1:9"} if protocol == "grpc-v2" else {"url": NOWHERE}
    return Transformer("t", predictor=PredictorSettings(protocol=protocol, **address, **settings))


def test_errors_built_from_an_answer_are_marked() -> None:
    assert from_http_status(400, "bad").answered and from_grpc_code("NOT_FOUND", "gone").answered
    assert from_http_status(599, "odd").answered
    assert not InvalidInput("mine").answered and not WharfError("mine").answered
    assert answered(WharfError("malformed")).answered


async def test_a_parameter_grpc_cannot_carry_is_the_callers_invalid_input() -> None:
    transformer = _transformer("grpc-v2")
    try:
        with pytest.raises(InvalidInput, match="parameter 'bad'"):
            await transformer.predict(InferRequest([Tensor("x", np.zeros(1))], parameters={"bad": [1]}))
    finally:
        await transformer.unload()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (from_http_status(404, "model 'nope' is not in the repository"), 404),
        (from_grpc_code("INVALID_ARGUMENT", "wrong shape"), 400),
        (from_http_status(500, "boom"), 500),
        (answered(WharfError("malformed answer from somewhere")), 500),
    ],
)
async def test_a_predictor_refusal_is_a_502_naming_its_answer(error: WharfError, status: int) -> None:
    transformer = _transformer()
    transformer._client = Raising(error)  # type: ignore[assignment]
    with pytest.raises(PredictorFailed, match=f"predictor 't' answered {status}: {error.message}"):
        await transformer.predict(np.zeros(1))


@pytest.mark.parametrize("error", [from_http_status(503, "busy"), from_http_status(504, "slow"), RequestTimeout("x")])
async def test_a_busy_or_slow_predictor_keeps_its_status(error: WharfError) -> None:
    transformer = _transformer()
    transformer._client = Raising(error)  # type: ignore[assignment]
    with pytest.raises(type(error)) as raised:
        await transformer.predict(np.zeros(1))
    assert raised.value is error and isinstance(error, (ServerBusy, RequestTimeout))


async def test_the_repository_makes_a_loaded_transformer_ready() -> None:
    repository = ModelRepository()
    repository.add(_transformer())
    await repository.load_all()
    assert repository.is_ready("t")
    await repository.unload_all()
    assert not repository.is_ready("t")


async def test_the_client_refuses_a_v1_request_it_cannot_send_before_sending() -> None:
    async with InferenceClient(NOWHERE, protocol="v1", timeout_s=1) as client:
        with pytest.raises(InvalidInput) as raised:
            await client.infer("m", InferRequest([Tensor("w", np.array([1.0]))]), version="1")
    assert not raised.value.answered
